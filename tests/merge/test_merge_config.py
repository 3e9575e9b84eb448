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
WEIGHTED = MODELS + "    parameters: {weight: 1.0}\n"  # mergekit needs a weight per model


def test_mergekit_style_config(tmp_path: Path) -> None:
    c = load_merge_config(
        cfg(
            tmp_path,
            "merge_method: dare_ties\nbase_model: base\n" + MODELS + "  - model: base\n"
            "parameters: {lambda: 0.8, density: 0.5, normalize: true, weight: 1.0}\n"
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
    with pytest.raises(ConfigError, match=f"base_model: required by merge method '{method}'"):
        load_merge_config(cfg(tmp_path, f"merge_method: {method}\n" + WEIGHTED))


def test_linear_needs_no_base_but_aim_does(tmp_path: Path) -> None:
    assert load_merge_config(cfg(tmp_path, "merge_method: linear\n" + WEIGHTED)).base_model is None
    with pytest.raises(ConfigError, match="base_model: required by aim"):
        load_merge_config(
            cfg(tmp_path, "merge_method: linear\n" + WEIGHTED + "aim: {omega: 0.4}\n")
        )


def test_bad_values_named(tmp_path: Path) -> None:
    base = "merge_method: ties\nbase_model: x\n" + WEIGHTED
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


# ---------------------------------------------------------------- same meaning as mergekit


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_merge_config(cfg(tmp_path, text))
    return str(e.value)


@pytest.mark.parametrize("method", sorted(MERGE_METHODS))
def test_a_model_without_weight_is_refused(tmp_path: Path, method: str) -> None:
    # mergekit: "Missing required parameter weight" for every method; burnish used 1.0
    msg = _error(tmp_path, f"merge_method: {method}\nbase_model: x\n" + MODELS)
    assert msg.startswith(f"{tmp_path / 'merge.yaml'}: models.1.parameters.weight: model 'b'")
    assert "mergekit requires one" in msg and "set weight" in msg
    ok = load_merge_config(
        cfg(tmp_path, f"merge_method: {method}\nbase_model: a\n{MODELS}parameters: {{weight: 3}}\n")
    )
    assert ok.weights()[-1] == 3.0


def test_a_listed_base_needs_no_weight_for_task_vectors(tmp_path: Path) -> None:
    text = "merge_method: ties\nbase_model: b\n" + MODELS  # b is the base: not merged
    assert load_merge_config(cfg(tmp_path, text)).weights() == [2.0]


def test_linear_averages_the_base_model_in_like_mergekit(tmp_path: Path) -> None:
    c = load_merge_config(
        cfg(
            tmp_path,
            "merge_method: linear\nbase_model: x\n" + MODELS + "parameters: {weight: 0.5}\n",
        )
    )
    assert [m.model for m in c.merged_models()] == ["a", "b", "x"]
    assert c.weights() == [2.0, 0.5, 0.5]
    msg = _error(tmp_path, "merge_method: linear\nbase_model: x\n" + WEIGHTED)
    assert "base_model: a linear merge averages base_model 'x' in" in msg and "weight: 0" in msg
    listed = "merge_method: linear\nbase_model: b\n" + WEIGHTED  # b is listed with a weight
    assert load_merge_config(cfg(tmp_path, listed)).weights() == [2.0, 1.0]


def test_linear_refuses_a_zero_weight_sum_mergekit_divides_by(tmp_path: Path) -> None:
    text = "merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\n"
    text += "  - model: b\n    parameters: {weight: -1}\n"
    assert "parameters.normalize: the weights sum to 0" in _error(tmp_path, text)
    assert load_merge_config(cfg(tmp_path, text + "parameters: {normalize: false}\n"))


PER_TENSOR = {
    "gradient": "[0.2, 0.8]",
    "filters": "[{filter: mlp, value: 0.5}, {value: 1.0}]",
    "one filter": "{filter: self_attn, value: 0.5}",
}


@pytest.mark.parametrize("value", PER_TENSOR.values(), ids=PER_TENSOR.keys())
@pytest.mark.parametrize(
    "where", ["models.0.parameters.weight", "parameters.density", "parameters.normalize"]
)
def test_per_tensor_parameter_lists_are_refused(tmp_path: Path, value: str, where: str) -> None:
    if where.startswith("models"):
        text = "merge_method: ties\nbase_model: x\nmodels:\n  - model: a\n"
        text += f"    parameters: {{weight: {value}}}\n"
    else:
        key = where.split(".")[1]
        text = f"merge_method: ties\nbase_model: x\n{WEIGHTED}parameters: {{{key}: {value}}}\n"
    msg = _error(tmp_path, text)
    assert f"merge.yaml: {where}: burnish does not support mergekit's per-tensor" in msg
    assert "give one number" in msg and "valid number" not in msg


MERGEKIT_ONLY = {
    "slices: []\n": "slices: layer slices are not supported",
    "modules: {}\n": "modules: per-module merges are not supported",
    "tokenizer: {source: base}\n": "tokenizer: building a tokenizer",
    "chat_template: chatml\n": "chat_template: not supported",
    "out_dtype: bfloat16\n": "out_dtype: not supported: burnish always computes in float32",
    "tokenizer_source: union\n": "tokenizer_source: 'union' is not supported",
}


@pytest.mark.parametrize("extra", MERGEKIT_ONLY, ids=lambda k: k.split(":")[0])
def test_mergekit_only_keys_say_how_burnish_differs(tmp_path: Path, extra: str) -> None:
    msg = _error(tmp_path, "merge_method: ties\nbase_model: x\n" + WEIGHTED + extra)
    assert MERGEKIT_ONLY[extra] in msg


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("gamma: 0.1", "burnish takes gamma only in the top-level parameters"),
        ("normalize: true", "shared by all models"),
        ("lambda: 2", "mergekit ignores a per-model value"),
    ],
)
def test_shared_keys_per_model_are_refused(tmp_path: Path, key: str, says: str) -> None:
    text = "merge_method: breadcrumbs\nbase_model: x\nmodels:\n  - model: a\n"
    text += f"    parameters: {{weight: 1, {key}}}\n"
    msg = _error(tmp_path, text)
    assert f"models.0.parameters.{key.split(':')[0]}: " in msg and says in msg


def test_rescale_means_l1_and_density_must_be_asked_for(tmp_path: Path) -> None:
    dare = "merge_method: dare_ties\nbase_model: x\n" + WEIGHTED
    assert (
        load_merge_config(cfg(tmp_path, dare)).parameters.method_options()["rescale_norm"] is None
    )
    asked = load_merge_config(cfg(tmp_path, dare + "parameters: {rescale_norm: density}\n"))
    assert asked.parameters.method_options()["rescale_norm"] == "density"
    ties = "merge_method: ties\nbase_model: x\n" + WEIGHTED
    msg = _error(tmp_path, ties + "parameters: {rescale_norm: density}\n")
    assert "parameters.rescale_norm: has no effect" in msg and "rescale: true" in msg
    assert load_merge_config(
        cfg(tmp_path, ties + "parameters: {rescale: true, rescale_norm: l1}\n")
    )
    ta = "merge_method: task_arithmetic\nbase_model: x\n" + WEIGHTED
    assert "does not sparsify" in _error(tmp_path, ta + "parameters: {rescale_norm: l1}\n")


def test_int8_mask_is_accepted(tmp_path: Path) -> None:
    text = "merge_method: ties\nbase_model: x\n" + WEIGHTED + "parameters: {int8_mask: true}\n"
    assert load_merge_config(cfg(tmp_path, text)).parameters.int8_mask is True
