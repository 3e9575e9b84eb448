"""The merge commands through ``burnish.cli.main``: output written, user errors on one line."""

from __future__ import annotations

from pathlib import Path

import pytest

import burnish.cli
from burnish.merge import load_stats


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """``cli(*args)`` -> (exit code, stdout, stderr) of the real ``burnish`` app's main()."""
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: object) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = burnish.cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def test_merge_then_aim_apply(cli, merge_yaml, family, tmp_path: Path) -> None:
    cfg = merge_yaml(tmp_path / "m.yaml", "ties", "parameters: {density: 0.5}\n")
    rc, out, err = cli("merge", cfg, tmp_path / "out", "--no-progress", "--omega", "0.4")
    assert rc == 0, err
    assert "merged 20 tensors" in out and "AIM statistics" in out
    assert (tmp_path / "out" / "model.safetensors").is_file()
    stats = tmp_path / "stats.safetensors"
    rc, out, err = cli("aim-stats", family["base"], "zoo", "-o", stats, "--max-texts", "8")
    assert rc == 0, err
    s, meta = load_stats(stats)
    assert "model.layers.0.mlp.up_proj.weight" in s and meta["blocks"] == "8"
    rc, out, err = cli(
        "aim-apply",
        tmp_path / "out",
        tmp_path / "post",
        "--base",
        family["base"],
        "--stats",
        stats,
        "--no-progress",
    )
    assert rc == 0, err
    assert (tmp_path / "post" / "aim_config.yaml").is_file()


def test_unknown_method_one_line(cli, merge_yaml, tmp_path: Path) -> None:
    rc, _, err = cli("merge", merge_yaml(tmp_path / "m.yaml", "frankenmerge"), tmp_path / "out")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert "unknown merge method 'frankenmerge'" in lines[0] and "dare_ties" in lines[0]
    assert not (tmp_path / "out").exists()


def test_bad_omega_one_line(cli, family, tmp_path: Path) -> None:
    rc, _, err = cli(
        "aim-apply", family["ft0"], tmp_path / "o", "--base", family["base"], "--omega", "2"
    )
    assert rc == 2 and "omega" in err and "Traceback" not in err
