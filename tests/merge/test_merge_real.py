"""Merge + AIM of two short fine-tunes of the real SmolLM2-135M-Instruct."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from burnish.merge import load_merge_config, run_merge
from burnish.models import load_model, save_model

pytestmark = pytest.mark.real


def _nudged(base: Path, out: Path, seed: int) -> Path:
    """A stand-in fine-tune: the real weights plus small seeded changes (real shapes, tied)."""
    model, tok = load_model(base)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 1e-3)
    return save_model(model, tok, out)


def test_ties_with_aim_on_pydoc_statistics(smollm2: Path, tmp_path: Path) -> None:
    a, b = _nudged(smollm2, tmp_path / "a", 1), _nudged(smollm2, tmp_path / "b", 2)
    yaml = tmp_path / "m.yaml"
    yaml.write_text(
        f"merge_method: ties\nbase_model: {smollm2}\nmodels:\n  - model: {a}\n  - model: {b}\n"
        "parameters: {weight: 0.5, density: 0.5}\n"
        f"aim: {{omega: 0.4, data: pydoc, max_texts: 4, block_size: 128, "
        f"stats: {tmp_path / 'stats.safetensors'}}}\n"
    )
    result = run_merge(load_merge_config(yaml), tmp_path / "merged")
    assert result.aim_stats is not None and result.aim_stats.is_file()
    merged, tok = load_model(result.output)
    ids = tok("for x in range(3):", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.isfinite(merged(ids).logits).all()
    m = load_file(str(result.output / "model.safetensors"))
    base = load_file(str(smollm2 / "model.safetensors"))
    key = "model.layers.0.mlp.up_proj.weight"
    assert m.keys() == base.keys() and not torch.equal(m[key], base[key])
