"""Model directories: clear errors, exact round trips, bf16 saves, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from burnish.errors import ConfigError, ModelLoadError
from burnish.models import (
    check_model_dir,
    load_config,
    load_model,
    parse_dtype,
    save_model,
)


def test_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such model directory"):
        load_model(tmp_path / "nope")


def test_file_instead_of_dir(tmp_path: Path) -> None:
    f = tmp_path / "model.safetensors"
    f.write_text("x")
    with pytest.raises(ModelLoadError, match="got a file"):
        load_model(f)


def test_dir_without_config(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_text("x")
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        load_model(tmp_path)


def test_config_but_no_weights(tmp_path: Path, model_dir: Path) -> None:
    d = tmp_path / "empty"
    d.mkdir()
    (d / "config.json").write_text((model_dir / "config.json").read_text())
    with pytest.raises(ModelLoadError, match="no weights found"):
        check_model_dir(d)


def test_pickle_checkpoint_refused_unless_allowed(tmp_path: Path, model_dir: Path) -> None:
    d = tmp_path / "pickled"
    d.mkdir()
    (d / "config.json").write_text((model_dir / "config.json").read_text())
    (d / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ModelLoadError, match="allow_pickle") as e:
        load_model(d)
    assert "pytorch_model.bin" in str(e.value)
    assert check_model_dir(d, allow_pickle=True) == d.resolve()


def test_round_trip_gives_identical_logits(tmp_path: Path, tiny_model, tok) -> None:
    model = tiny_model("qwen2")
    path = save_model(model, tok, tmp_path / "m", extra_files={"README.md": "card"})
    loaded, tok2 = load_model(path)
    assert not loaded.training
    assert (path / "README.md").read_text() == "card"
    assert type(loaded) is type(model)
    ids = torch.tensor([tok.encode("count a in abca")])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert tok2.encode("count a in abca") == tok.encode("count a in abca")
    assert load_config(path).hidden_size == 32


def test_save_bfloat16(tmp_path: Path, tiny_model, tok) -> None:
    model = tiny_model("llama")
    path = save_model(model, tok, tmp_path / "bf16", dtype="bfloat16")
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118
    assert dtypes == {torch.bfloat16}
    assert json.loads((path / "config.json").read_text())["dtype"] == "bfloat16"
    assert next(model.parameters()).dtype == torch.float32  # in-memory model unchanged
    loaded, _ = load_model(path, dtype="bfloat16")
    assert next(loaded.parameters()).dtype == torch.bfloat16
    w = model.model.embed_tokens.weight
    assert torch.equal(loaded.model.embed_tokens.weight, w.detach().to(torch.bfloat16))


def _failing_save(monkeypatch: pytest.MonkeyPatch, tok) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(tok, "save_pretrained", boom)


def test_failed_save_leaves_nothing(tmp_path: Path, tiny_model, monkeypatch) -> None:
    from burnish.models import build_char_tokenizer

    tok = build_char_tokenizer()  # a private instance: the shared one must not be patched
    _failing_save(monkeypatch, tok)
    parent = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        save_model(tiny_model("llama"), tok, parent / "m")
    assert list(parent.iterdir()) == []  # no target, no temporary directory


def test_failed_save_keeps_existing_target(
    tmp_path: Path, model_dir: Path, tiny_model, monkeypatch
):
    from burnish.models import build_char_tokenizer

    before = {p.name: p.read_bytes() for p in model_dir.iterdir()}
    tok = build_char_tokenizer()
    _failing_save(monkeypatch, tok)
    with pytest.raises(RuntimeError, match="disk full"):
        save_model(tiny_model("llama", seed=1, hidden_size=64), tok, model_dir)
    assert {p.name: p.read_bytes() for p in model_dir.iterdir()} == before
    assert sorted(p.name for p in model_dir.parent.iterdir()) == [model_dir.name]


def test_overwrite_replaces_target(tmp_path: Path, model_dir: Path, tiny_model, tok) -> None:
    new = tiny_model("llama", seed=1, hidden_size=64)
    save_model(new, tok, model_dir)
    loaded, _ = load_model(model_dir)
    assert torch.equal(loaded.lm_head.weight, new.lm_head.weight)
    assert sorted(p.name for p in model_dir.parent.iterdir()) == [model_dir.name]


def test_parse_dtype() -> None:
    assert parse_dtype("bf16") is torch.bfloat16
    assert parse_dtype(torch.float16) is torch.float16
    with pytest.raises(ConfigError, match="unknown dtype 'int8'"):
        parse_dtype("int8")


def test_corrupt_weights_file_is_one_clear_error(model_dir: Path) -> None:
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated download
    with pytest.raises(ModelLoadError, match=r"cannot load the model.*corrupt"):
        load_model(model_dir)
