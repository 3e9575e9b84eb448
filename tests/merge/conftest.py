"""Merge fixtures: a tiny random Llama "base" and fine-tunes of it saved as HF directories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedModel

from burnish.models import save_model


def perturbed(model: PreTrainedModel, seed: int, scale: float = 0.02) -> PreTrainedModel:
    """``model`` with seeded Gaussian noise added to every parameter (a fake fine-tune)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


@pytest.fixture(scope="session")
def perturb() -> Callable[..., PreTrainedModel]:
    """The :func:`perturbed` helper as a fixture (test modules do not import conftest)."""
    return perturbed


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AIM statistics are cached under $BURNISH_CACHE: keep them out of ~/.cache."""
    monkeypatch.setenv("BURNISH_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def family(tmp_path_factory: pytest.TempPathFactory, tok, tiny_model) -> dict[str, Path]:
    """``base`` and fine-tunes ``ft0``..``ft2`` (hidden 32, 2 layers, tied); ``ft1`` is sharded
    into several safetensors files with an index. Read-only for tests."""
    root = tmp_path_factory.mktemp("family")
    out = {"base": save_model(tiny_model("llama"), tok, root / "base")}
    for i in range(3):
        model = perturbed(tiny_model("llama"), seed=100 + i)
        if i == 1:
            model.save_pretrained(str(root / "ft1"), max_shard_size="20KB")
            tok.save_pretrained(str(root / "ft1"))
            out["ft1"] = root / "ft1"
        else:
            out[f"ft{i}"] = save_model(model, tok, root / f"ft{i}")
    return out


@pytest.fixture(scope="session")
def merge_yaml(family: dict[str, Path]) -> Callable[..., Path]:
    """``merge_yaml(path, method, extra="")``: write a merge config of base + ft0..ft2 with
    ``method`` to ``path``; ``extra`` is appended YAML. Each fine-tune has weight 1 (mergekit
    requires a weight); the base is listed with weight 0, so a linear merge, which averages a
    base_model in as mergekit does, stays the mean of the fine-tunes."""

    def write(path: Path, method: str, extra: str = "") -> Path:
        models = "".join(
            f"  - model: {family[f'ft{i}']}\n    parameters: {{weight: 1.0}}\n" for i in range(3)
        )
        models += f"  - model: {family['base']}\n    parameters: {{weight: 0.0}}\n"
        path.write_text(
            f"merge_method: {method}\nbase_model: {family['base']}\nmodels:\n{models}{extra}"
        )
        return path

    return write
