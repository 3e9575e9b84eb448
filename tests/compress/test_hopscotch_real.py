"""Hopscotch on real checkpoints: SmolLM2-135M-Instruct end to end (calibration on pydoc,
selection, save, load with the savings, cached = uncached generation, plain export), and
Gemma-3-270m's sandwich norms and sliding layers (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers.cache_utils import DummyLayer

from burnish.compress import HopscotchConfig, SelectionSettings, fold_scales, run_hopscotch
from burnish.data.corpus import corpus_blocks
from burnish.errors import ModelLoadError
from burnish.models import load_model
from burnish.models.skipping import scaled_layers, wrap_scaled

pytestmark = pytest.mark.real


def check_generation_and_fold(model, ids: torch.Tensor, skipped: list[int]) -> None:
    kw = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
    with torch.no_grad():
        cached = model.generate(ids, use_cache=True, return_dict_in_generate=True, **kw)
        plain = model.generate(ids, use_cache=False, **kw)
        assert torch.equal(cached.sequences, plain)
        layers = cached.past_key_values.layers
        assert [i for i, x in enumerate(layers) if isinstance(x, DummyLayer)] == skipped
        want = model(ids).logits
        fold_scales(model)
        torch.testing.assert_close(model(ids).logits, want, rtol=0, atol=1e-4)


def test_smollm2_end_to_end(smollm2: Path, tmp_path: Path) -> None:
    out = tmp_path / "hs"
    config = HopscotchConfig(data="pydoc", samples=2, corpus_blocks=1, final_epochs=1)
    report = run_hopscotch(smollm2, out, SelectionSettings(method="attn-drop", k=2), config)
    assert len(report["skip_attention"]) == 2
    model, tok = load_model(out)
    assert [i for i, m in enumerate(scaled_layers(model)) if m.skip_attention] == report[
        "skip_attention"
    ]
    ids = torch.tensor([corpus_blocks(tok, "test", 48, 1)[0]])
    check_generation_and_fold(model, ids, report["skip_attention"])


@pytest.mark.slow
def test_gemma3_sliding_and_full_layers(tmp_path_factory: pytest.TempPathFactory) -> None:
    from burnish.models.gguf import import_gguf

    try:
        path = import_gguf("gemma-3-270m", tmp_path_factory.mktemp("real") / "gemma-3-270m")
    except ModelLoadError as e:
        pytest.skip(f"real model unavailable: {e}")
    model, tok = load_model(path)
    kinds = model.config.layer_types
    skipped = [kinds.index("sliding_attention"), kinds.index("full_attention")]
    wrap_scaled(model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i, layer in enumerate(scaled_layers(model)):
            layer.scales.copy_(1 + 0.1 * (torch.rand(4, generator=g) - 0.5))
            layer.skip_attention = i in skipped
    ids = torch.tensor([corpus_blocks(tok, "test", 600, 1)[0]])  # longer than the window
    check_generation_and_fold(model, ids, skipped)
