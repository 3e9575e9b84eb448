"""Parity with mergekit 0.1.5 (only where mergekit is installed: the `bench` extra).

The same YAML is run through burnish and through mergekit (in this process, through its
``run_merge``) and the outputs are compared bit for bit. On float32 inputs every deterministic
method is bit-identical, ties at the trim threshold included; DARE's random drop uses another
random stream, so DARE is compared without a drop (density 1) and its rescale on one mask.
On bf16 inputs the tools differ by design: mergekit computes in the inputs' dtype (delta,
trim, sign election and sums in bf16), burnish computes in float32 and rounds once at the end
(and, as no tie rule can reproduce a trim of other numbers, breaks trim ties in index order).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from burnish.errors import ConfigError
from burnish.merge import LazyCheckpoint, load_merge_config, run_merge
from burnish.merge.sparsify import apply_mask, magnitude_mask, outlier_mask
from burnish.models import save_model
from burnish.models.zoo import resolve_model

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mergekit") is None, reason="mergekit not installed (bench extra)"
)

SOURCES = ("ft-addition", "ft-sorting", "ft-reversal")


def _zoo() -> dict[str, str]:
    return {n: str(resolve_model(n)) for n in ("base", *SOURCES)}


def _write(tmp_path: Path, cfg: dict) -> Path:
    path = tmp_path / "merge.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def _mergekit(path: Path, out: Path) -> None:
    """Run mergekit's own merge on the YAML at ``path`` (CPU, offline, quiet)."""
    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge as mergekit_run
    from mergekit.options import MergeOptions

    os.environ["HF_HUB_OFFLINE"] = "1"
    config = MergeConfiguration.model_validate(yaml.safe_load(path.read_text()))
    mergekit_run(config, str(out), MergeOptions(quiet=True, write_model_card=False))


def _assert_bit_identical(tmp_path: Path, cfg: dict) -> None:
    path = _write(tmp_path, cfg)
    run_merge(load_merge_config(path), tmp_path / "burnish")
    _mergekit(path, tmp_path / "mergekit")
    ours, theirs = LazyCheckpoint(tmp_path / "burnish"), LazyCheckpoint(tmp_path / "mergekit")
    assert set(ours.names()) == set(theirs.names())
    for name in ours.names():
        assert torch.equal(ours.read(name), theirs.read(name)), name


def _models(zoo: dict[str, str], **params: float) -> list[dict]:
    return [{"model": zoo[n], "parameters": dict(params)} for n in SOURCES]


@pytest.mark.parametrize("normalize", [True, False])
def test_ties_on_float32_inputs_is_bit_identical_to_mergekit(tmp_path, normalize) -> None:
    zoo = _zoo()
    weight = 1.0 if normalize else 0.5
    cfg = {
        "merge_method": "ties",
        "base_model": zoo["base"],
        "models": _models(zoo, weight=weight, density=0.5),
        "parameters": {"normalize": normalize},
    }
    _assert_bit_identical(tmp_path, cfg)


def _method_cases() -> dict[str, Callable[[dict[str, str]], dict]]:
    """Every registered method, with non-default parameters where they change the result."""
    return {
        "linear": lambda z: {
            "merge_method": "linear",
            "models": [
                {"model": z[n], "parameters": {"weight": w}}
                for n, w in zip(SOURCES, [1.0, 0.5, 2.0], strict=True)
            ],
        },
        "linear_with_base": lambda z: {  # mergekit averages the base in, with its weight
            "merge_method": "linear",
            "base_model": z["base"],
            "models": [{"model": z[n]} for n in SOURCES],
            "parameters": {"weight": 0.5},
        },
        "task_arithmetic": lambda z: {
            "merge_method": "task_arithmetic",
            "base_model": z["base"],
            "models": _models(z, weight=0.4),
            "parameters": {"lambda": 0.7},
        },
        "ties_rescale": lambda z: {  # rescale: true is an L1-norm rescale in both
            "merge_method": "ties",
            "base_model": z["base"],
            "models": _models(z, weight=0.5, density=0.3),
            "parameters": {"rescale": True},
        },
        "dare_linear_no_drop": lambda z: {
            "merge_method": "dare_linear",
            "base_model": z["base"],
            "models": _models(z, weight=0.5),
        },
        "dare_ties_no_drop": lambda z: {
            "merge_method": "dare_ties",
            "base_model": z["base"],
            "models": _models(z, weight=0.5),
        },
        "breadcrumbs": lambda z: {
            "merge_method": "breadcrumbs",
            "base_model": z["base"],
            "models": _models(z, weight=0.5, density=0.5),
            "parameters": {"gamma": 0.05},
        },
        "breadcrumbs_ties": lambda z: {
            "merge_method": "breadcrumbs_ties",
            "base_model": z["base"],
            "models": _models(z, weight=0.5, density=0.4),
            "parameters": {"gamma": 0.1},
        },
    }


@pytest.mark.parametrize("case", sorted(_method_cases()))
def test_every_method_is_bit_identical_to_mergekit(tmp_path: Path, case: str) -> None:
    _assert_bit_identical(tmp_path, _method_cases()[case](_zoo()))


def _steps(shape: torch.Size, g: torch.Generator) -> torch.Tensor:
    return torch.randint(-3, 4, shape, generator=g).float() / 8  # 7 exact values


@pytest.fixture(scope="module")
def tied_family(tmp_path_factory, tok, tiny_model) -> dict[str, str]:
    """A base and three fine-tunes whose weights are multiples of 1/8: every task vector takes
    seven exact values, so many entries tie at any trim threshold."""
    root = tmp_path_factory.mktemp("tied")
    g = torch.Generator().manual_seed(0)
    base = tiny_model("llama")
    with torch.no_grad():
        for p in base.parameters():
            p.copy_(_steps(p.shape, g))
    out = {"base": str(save_model(base, tok, root / "base"))}
    for name in SOURCES:
        model = tiny_model("llama")
        with torch.no_grad():
            for p, b in zip(model.parameters(), base.parameters(), strict=True):
                p.copy_(b + _steps(p.shape, g))  # exact: the delta is the step
        out[name] = str(save_model(model, tok, root / name))
    return out


@pytest.mark.parametrize("method", ["ties", "breadcrumbs_ties"])
def test_trim_with_ties_at_the_threshold_is_bit_identical_to_mergekit(
    tmp_path: Path, tied_family: dict[str, str], method: str
) -> None:
    cfg = {
        "merge_method": method,
        "base_model": tied_family["base"],
        "models": _models(tied_family, weight=0.5, density=0.3),
    }
    _assert_bit_identical(tmp_path, cfg)


def _tied(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Values from {-3, ..., 3}: about 1/7 of the entries tie at any magnitude."""
    return torch.randint(-3, 4, shape, generator=torch.Generator().manual_seed(seed)).float()


@pytest.mark.parametrize("shape", [(7,), (64, 100), (512, 768)])
@pytest.mark.parametrize("density", [0.01, 0.3, 0.5, 0.9])
def test_magnitude_trim_keeps_mergekits_entries_under_ties(shape, density) -> None:
    from mergekit.sparsify import RescaleNorm, magnitude

    d = _tied(shape, seed=len(shape) + int(density * 100))
    for rescale in (False, True):
        theirs = magnitude(d, density, RescaleNorm.l1 if rescale else None)
        ours = apply_mask(d, magnitude_mask(d, density), density, rescale)
        assert torch.equal(ours, theirs), (shape, density, rescale)


@pytest.mark.parametrize("gamma", [0.0, 0.05, 0.2])
def test_outlier_drop_keeps_mergekits_entries_under_ties(gamma) -> None:
    from mergekit.sparsify import magnitude_outliers

    d = _tied((300, 200), seed=3)
    for density in (0.2, 0.5, 0.9):
        theirs = magnitude_outliers(d, density, None, gamma=gamma)
        assert torch.equal(d * outlier_mask(d, density, gamma), theirs), (density, gamma)


def test_rescale_true_is_mergekits_l1_rescale() -> None:
    from mergekit.sparsify import RescaleNorm, rescaled_masked_tensor

    d = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    mask = torch.rand(1000, generator=torch.Generator().manual_seed(1)) < 0.3  # a DARE drop
    theirs = rescaled_masked_tensor(d, mask.float(), RescaleNorm.l1)
    assert torch.equal(apply_mask(d, mask, 0.3, rescale=True), theirs)


@pytest.mark.parametrize(
    "cfg",
    [
        {"merge_method": "ties", "models": [{"model": "ft-addition"}]},  # no weight anywhere
        {  # linear averages the base in, and the base has no weight
            "merge_method": "linear",
            "base_model": "base",
            "models": [{"model": "ft-addition", "parameters": {"weight": 1.0}}],
        },
    ],
)
def test_configs_mergekit_refuses_are_refused(tmp_path: Path, cfg: dict) -> None:
    zoo = _zoo()
    cfg = json.loads(json.dumps(cfg))
    cfg.setdefault("base_model", "base")
    cfg["base_model"] = zoo[cfg["base_model"]]
    for m in cfg["models"]:
        m["model"] = zoo[m["model"]]
    path = _write(tmp_path, cfg)
    with pytest.raises(RuntimeError, match="Missing required parameter weight"):
        _mergekit(path, tmp_path / "mergekit")
    with pytest.raises(ConfigError, match="weight"):
        load_merge_config(path)
