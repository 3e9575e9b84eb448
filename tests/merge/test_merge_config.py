"""Merge YAML: mergekit's keys and meanings, and clear errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from burnish.errors import ConfigError
from burnish.merge import MERGE_METHODS, load_merge_config


def cfg(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "merge.yaml"
    path.write_text(text)
    return path


MODELS = "models:\n  - model: a\n    parameters: {weight: 2.0, density: 0.3}\n  - model: b\n"


def test_mergekit_style_config(tmp_path: Path) -> None:
    c = load_merge_config(
        cfg(
            tmp_path,
            "merge_method: dare_ties\nbase_model: base\n" + MODELS + "  - model: base\n"
            "parameters: {lambda: 0.8, density: 0.5, normalize: true}\n"
            "dtype: bfloat16\ntokenizer_source: a\n"
            "aim: {omega: 0.3, omega_by_module: {'*mlp*': 1}}\n",
        )
    )
    assert [m.model for m in c.merged_models()] == ["a", "b"]  # a listed base is not merged
    assert c.weights() == [2.0, 1.0] and c.densities() == [0.3, 0.5]
    opts = c.parameters.method_options()
    assert opts["lam"] == 0.8 and opts["normalize"] is True and opts["rescale"] is None
    assert c.aim is not None and c.aim.omega == 0.3 and c.aim.omega_by_module == {"*mlp*": 1.0}


def test_unknown_method_lists_methods(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"merge\.yaml: merge_method: .*unknown merge method 'slerp'"
    ) as e:
        load_merge_config(cfg(tmp_path, "merge_method: slerp\nbase_model: x\n" + MODELS))
    assert all(name in str(e.value) for name in MERGE_METHODS)


@pytest.mark.parametrize("density", ["0", "1.5", "-0.2"])
def test_density_outside_unit_interval(tmp_path: Path, density: str) -> None:
    text = "merge_method: ties\nbase_model: x\nmodels:\n  - model: a\n"
    text += f"    parameters: {{density: {density}}}\n"
    with pytest.raises(ConfigError, match=r"models\.0\.parameters\.density"):
        load_merge_config(cfg(tmp_path, text))
    with pytest.raises(ConfigError, match=r"parameters\.density"):
        load_merge_config(
            cfg(
                tmp_path,
                f"merge_method: ties\nbase_model: x\n{MODELS}parameters: {{density: {density}}}\n",
            )
        )


@pytest.mark.parametrize("method", [m for m, spec in MERGE_METHODS.items() if spec.needs_base])
def test_missing_base_model(tmp_path: Path, method: str) -> None:
    with pytest.raises(ConfigError, match=f"base_model is required by merge method '{method}'"):
        load_merge_config(cfg(tmp_path, f"merge_method: {method}\n" + MODELS))


def test_linear_needs_no_base_but_aim_does(tmp_path: Path) -> None:
    assert load_merge_config(cfg(tmp_path, "merge_method: linear\n" + MODELS)).base_model is None
    with pytest.raises(ConfigError, match="base_model is required by aim"):
        load_merge_config(cfg(tmp_path, "merge_method: linear\n" + MODELS + "aim: {omega: 0.4}\n"))


def test_bad_values_named(tmp_path: Path) -> None:
    base = "merge_method: ties\nbase_model: x\n" + MODELS
    cases = {
        "parameters: {lamda: 1}\n": r"parameters\.lamda: unknown key",
        "aim: {omega: 1.5}\n": r"aim\.omega",
        "aim: {omega_by_module: {'*': 2}}\n": "omega for '\\*' is 2",
        "dtype: float8\n": "unknown dtype 'float8'",
        "weights: 1\n": "weights: unknown key",
    }
    for extra, pattern in cases.items():
        with pytest.raises(ConfigError, match=pattern):
            load_merge_config(cfg(tmp_path, base + extra))
    with pytest.raises(ConfigError, match="besides base_model"):
        load_merge_config(
            cfg(tmp_path, "merge_method: ties\nbase_model: x\nmodels: [{model: x}]\n")
        )
    with pytest.raises(ConfigError, match="no such config file"):
        load_merge_config(tmp_path / "missing.yaml")


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("merge*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate(path: Path) -> None:
    c = load_merge_config(path)
    assert c.merge_method in MERGE_METHODS and len(c.merged_models()) == 3


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2
