"""Where a merge may write: never over files it did not write, never into an input model."""

from __future__ import annotations

from pathlib import Path

import pytest

import burnish.cli
from burnish.errors import OutputExistsError
from burnish.merge import load_merge_config, run_merge


def _cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    capsys.readouterr()
    rc = burnish.cli.main([str(a) for a in args])
    return rc, capsys.readouterr().err


def test_non_empty_output_is_refused_and_overwrite_keeps_other_files(
    merge_yaml, tmp_path: Path, capsys
) -> None:
    cfg = merge_yaml(tmp_path / "m.yaml", "ties", "parameters: {density: 0.5}\n")
    out = tmp_path / "d"
    out.mkdir()
    (out / "notes.txt").write_text("x")
    rc, err = _cli(capsys, "merge", cfg, out, "--no-progress")
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--overwrite" in lines[0]
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    rc, err = _cli(capsys, "merge", cfg, out, "--no-progress", "--overwrite")
    assert rc == 0, err
    assert (out / "notes.txt").read_text() == "x"
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("where", ["same", "inside"])
def test_output_in_an_input_model_is_refused(merge_yaml, family, tmp_path: Path, where) -> None:
    cfg = load_merge_config(merge_yaml(tmp_path / "m.yaml", "ties"))
    target = family["ft0"] if where == "same" else family["ft0"] / "merged"
    before = sorted(p.name for p in family["ft0"].iterdir())
    with pytest.raises(OutputExistsError, match="input model"):
        run_merge(cfg, target, overwrite=True)
    assert sorted(p.name for p in family["ft0"].iterdir()) == before


def test_merge_into_current_folder_is_one_line(
    merge_yaml, tmp_path: Path, capsys, monkeypatch
) -> None:
    cfg = merge_yaml(tmp_path / "m.yaml", "ties")
    monkeypatch.chdir(tmp_path)
    rc, err = _cli(capsys, "merge", cfg, ".", "--no-progress")
    assert rc == 2 and err.startswith("error: ") and "Traceback" not in err
    rc, err = _cli(capsys, "merge", cfg, ".", "--no-progress", "--overwrite")
    assert rc == 0, err
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "m.yaml").is_file()


def test_pickle_merge_input_advice_names_no_missing_flag(merge_yaml, family, tmp_path) -> None:
    """The merge streams safetensors only: its pickle error must not advise --allow-pickle."""
    import shutil

    from burnish.errors import ModelLoadError

    pick = tmp_path / "pick"
    shutil.copytree(family["ft2"], pick)
    (pick / "model.safetensors").unlink()
    (pick / "pytorch_model.bin").write_bytes(b"not really")
    cfg = merge_yaml(tmp_path / "m.yaml", "ties").read_text().replace(str(family["ft2"]), str(pick))
    (tmp_path / "p.yaml").write_text(cfg)
    with pytest.raises(ModelLoadError, match="safetensors only") as e:
        run_merge(load_merge_config(tmp_path / "p.yaml"), tmp_path / "out")
    assert "--allow-pickle" not in str(e.value)
