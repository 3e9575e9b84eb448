"""KIVI and SQuat on the real SmolLM2-135M-Instruct (head dim 64, GQA 9/3) over real text."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from burnish.data.corpus import corpus_blocks
from burnish.kvcache import KIVICache, SQuatCache
from burnish.models import load_model

pytestmark = pytest.mark.real


def _next_logits(model, ids: torch.Tensor, cache) -> torch.Tensor:
    """Logits for the token after a 128-token continuation fed one at a time through the cache."""
    prompt, rest = ids[:, :-16], ids[:, -16:]
    with torch.no_grad():
        out = model(input_ids=prompt, past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        for t in range(rest.shape[1]):
            out = model(input_ids=rest[:, t : t + 1], past_key_values=cache, use_cache=True)
    return out.logits[:, -1].float().log_softmax(-1)


@pytest.mark.parametrize("cache_class", [KIVICache, SQuatCache])
def test_4bit_cache_keeps_the_next_token_distribution(smollm2: Path, cache_class) -> None:
    model, tok = load_model(smollm2)
    block = corpus_blocks(tok, "test", block_size=200, max_blocks=1)[0]
    ids = torch.tensor([block])
    ref = _next_logits(model, ids, None)
    with cache_class(model, bits=4, group_size=16, residual_length=16) as cache:
        got = _next_logits(model, ids, cache)
        held = cache.nbytes()["total"]
    kl = torch.sum(ref.exp() * (ref - got)).item()  # KL(fp || quantized)
    assert 0 <= kl < 0.05, kl
    fp16 = 2 * 2 * model.config.num_hidden_layers * 3 * 64 * ids.shape[1]  # K+V, fp16 bytes
    # All but the 16..31 newest tokens in 4-bit codes; SQuat adds its fixed query basis.
    assert held < 0.7 * fp16
