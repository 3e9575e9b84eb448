"""Hopscotch on real checkpoints: SmolLM2-135M-Instruct (selection on pydoc text, cached =
uncached generation, plain export) and Gemma-3-270m's sandwich norms and sliding layers
(slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers.cache_utils import DummyLayer

from burnish.compress import SelectionSettings, fold_scales, select
from burnish.compress.data import pack_calibration
from burnish.compress.scales import fit_scales
from burnish.data.corpus import corpus_blocks
from burnish.errors import ModelLoadError
from burnish.models import load_model
from burnish.models.skipping import scaled_layers, wrap_scaled

pytestmark = pytest.mark.real


def check_generation_and_fold(
    model, ids: torch.Tensor, skipped: list[int], atol: float = 5e-4
) -> None:
    """Cached = uncached generation, DummyLayer slots, and the plain fold (fp32 round-off of
    ~30 rescaled layers on logits of magnitude ~20 reaches ~1.5e-4; the zoo test holds 1e-4)."""
    kw = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
    with torch.no_grad():
        cached = model.generate(ids, use_cache=True, return_dict_in_generate=True, **kw)
        plain = model.generate(ids, use_cache=False, **kw)
        assert torch.equal(cached.sequences, plain)
        layers = cached.past_key_values.layers
        assert [i for i, x in enumerate(layers) if isinstance(x, DummyLayer)] == skipped
        want = model(ids).logits
        fold_scales(model)
        torch.testing.assert_close(model(ids).logits, want, rtol=0, atol=atol)


def test_smollm2_selection_generation_and_fold(smollm2: Path) -> None:
    """SmolLM2: a selection on real pydoc text skips two blocks; cached generation equals
    uncached with those slots empty; the plain fold keeps the logits. (The whole command,
    save and load included, is tested on the zoo; on SmolLM2 it runs in the benchmark.)"""
    model, tok = load_model(smollm2)
    blocks = corpus_blocks(tok, "train", 64, 4)
    calib = pack_calibration(
        [(b, list(b)) for b in blocks], row_tokens=128, batch_rows=2, pad_id=tok.pad_token_id or 0
    )
    wrap_scaled(model)
    state = select(model, calib, SelectionSettings(method="attn-drop", k=2))
    fit_scales(model, calib, steps=2, lr=3e-3)
    ids = torch.tensor([corpus_blocks(tok, "test", 48, 1)[0]])
    check_generation_and_fold(model, ids, sorted(state.chosen))


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
