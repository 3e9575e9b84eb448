"""Gemma-3-270m (a second family: 262k vocabulary, head dim 256, one KV head, 15 of 18 layers
with a 512-token sliding window): import, real-text perplexity, and the quantized KV caches
on a prompt longer than the window. Slow (the import alone takes about two minutes here)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from burnish.data.corpus import corpus_blocks
from burnish.errors import ModelLoadError
from burnish.eval.perplexity import perplexity
from burnish.kvcache import KIVICache, SQuatCache, SQuatPreCache
from burnish.models import load_model

pytestmark = [pytest.mark.real, pytest.mark.slow]


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from burnish.models.gguf import import_gguf

    try:
        return import_gguf("gemma-3-270m", tmp_path_factory.mktemp("real") / "gemma-3-270m")
    except ModelLoadError as e:
        pytest.skip(f"real model unavailable: {e}")


def blocks_ok(tok) -> bool:
    """Every real-text block starts with Gemma's <bos>."""
    return all(b[0] == tok.bos_token_id for b in corpus_blocks(tok, "test", 256, max_blocks=8))


def _continuation_logprobs(model, ids: torch.Tensor, n: int, cache) -> torch.Tensor:
    """Next-token log-probs ``[n, V]`` over the last ``n`` tokens, fed one at a time."""
    with torch.no_grad():
        out = model(input_ids=ids[:, :-n], past_key_values=cache, use_cache=True)
        rows = []
        for t in range(ids.shape[1] - n, ids.shape[1]):
            out = model(input_ids=ids[:, t : t + 1], past_key_values=out.past_key_values)
            rows.append(out.logits[0, -1].float().log_softmax(-1))
    return torch.stack(rows)


def test_gemma_imports_and_predicts_real_text(gemma: Path) -> None:
    model, tok = load_model(gemma)
    cfg = model.config
    assert cfg.sliding_window == 512 and cfg.layer_types.count("full_attention") == 3
    assert cfg.attn_logit_softcapping is None and cfg.final_logit_softcapping is None
    res = perplexity(model, corpus_blocks(tok, "test", block_size=256, max_blocks=4))
    # 23 here; without the <bos> that every block starts with it was 108
    assert blocks_ok(tok) and math.isfinite(res.perplexity) and res.perplexity < 40, res.perplexity


@pytest.mark.parametrize("cache_class", [KIVICache, SQuatCache, SQuatPreCache])
def test_4bit_caches_follow_gemma_past_its_sliding_window(gemma: Path, cache_class) -> None:
    """A 700-token prompt (longer than the 512-token window): the sliding layers' mask hides
    the oldest tokens, which the cache takes as padding; the full layers keep all of them.
    4-bit keys and values keep the next-token distribution (KL(fp || quantized) small)."""
    model, tok = load_model(gemma)
    block = next(b for b in corpus_blocks(tok, "test", block_size=700) if len(b) == 700)
    ids = torch.tensor([block])
    ref = _continuation_logprobs(model, ids, 8, None)
    with cache_class(model, bits=4) as cache:
        got = _continuation_logprobs(model, ids, 8, cache)
    layers = cache.layers
    kinds = model.config.layer_types
    assert all(
        int(layer.pad[0]) == 0 for layer, k in zip(layers, kinds, strict=True) if "full" in k
    )
    assert all(int(layer.pad[0]) > 0 for layer, k in zip(layers, kinds, strict=True) if "slid" in k)
    kl = (ref.exp() * (ref - got)).sum(-1).mean().item()
    assert 0 <= kl < 0.05, kl
