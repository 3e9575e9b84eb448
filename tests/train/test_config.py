"""SFT configuration: YAML + overrides, with errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from burnish.config import load_config, parse_overrides
from burnish.errors import ConfigError
from burnish.train import SFTConfig


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sft.yaml"
    path.write_text(text)
    return path


def test_yaml_and_override_precedence(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "model: base\ndata: d.jsonl\nlr: 0.01\nepochs: 3\n")
    cfg = load_config(SFTConfig, path, {"lr": 1e-4, "warmup_steps": None})
    assert cfg.lr == 1e-4  # override wins
    assert cfg.epochs == 3  # from the YAML
    assert cfg.warmup_steps == 0  # a None override means "not given": the default stays
    assert cfg.grad_clip == 1.0 and cfg.effective_batch_size == 64  # defaults
    assert load_config(SFTConfig, None, {"model": "m", "data": "d"}).model == "m"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "model: base\ndata: d.jsonl\nlearnig_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"sft\.yaml: learnig_rate: unknown key"):
        load_config(SFTConfig, path)
    with pytest.raises(ConfigError, match="batch: unknown key"):
        load_config(SFTConfig, None, {"model": "m", "data": "d", "batch": 1})


def test_invalid_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lr: "):
        load_config(SFTConfig, None, {"model": "m", "data": "d", "lr": -1})
    with pytest.raises(ConfigError, match="lr_scheduler: "):
        load_config(SFTConfig, None, {"model": "m", "data": "d", "lr_scheduler": "step"})
    with pytest.raises(ConfigError, match="model: Field required"):
        load_config(SFTConfig, None, {"data": "d"})
    with pytest.raises(ConfigError, match="epochs: "):
        load_config(SFTConfig, None, {"model": "m", "data": "d", "epochs": "two"})


def test_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sft\.yaml: not valid YAML"):
        load_config(SFTConfig, _yaml(tmp_path, "model: [unclosed\n"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(SFTConfig, _yaml(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(SFTConfig, tmp_path / "missing.yaml")


def test_parse_overrides_types() -> None:
    got = parse_overrides(
        ["lr=1e-3", "epochs=2", "lr-scheduler=cosine", "save_state=false", "max_steps="]
    )
    assert got == {
        "lr": 1e-3,
        "epochs": 2,
        "lr_scheduler": "cosine",
        "save_state": False,
        "max_steps": None,
    }
    assert type(got["lr"]) is float and type(got["epochs"]) is int
    assert parse_overrides(["output_dir=runs/a=b"]) == {"output_dir": "runs/a=b"}
    # Exponent floats (a plain YAML 1.1 loader reads 1e-3 as a string); quotes keep a string.
    assert parse_overrides(["lr=2E-5", "x=-1e3", "y='1e-3'"]) == {
        "lr": 2e-5,
        "x": -1e3,
        "y": "1e-3",
    }


def test_yaml_exponent_floats(tmp_path: Path) -> None:
    cfg = load_config(SFTConfig, _yaml(tmp_path, "model: m\ndata: d\nlr: 1e-3\n"))
    assert cfg.lr == 1e-3 and isinstance(cfg.lr, float)


@pytest.mark.parametrize("item", ["lr", "=3", " =1", ""])
def test_malformed_override(item: str) -> None:
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides([item])


def test_config_is_frozen() -> None:
    cfg = SFTConfig(model="m", data="d")
    with pytest.raises(ValueError, match="frozen"):
        cfg.lr = 1.0  # type: ignore[misc]
