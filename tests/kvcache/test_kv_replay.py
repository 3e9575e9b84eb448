"""A recorded prefill replayed into a fresh cache leaves it as the real prefill would."""

from __future__ import annotations

import pytest
import torch

from burnish.kvcache import KIVICache, SQuatCache, SQuatPreCache
from burnish.kvcache.replay import record_prefill, replay_prefill

G = R = 4


def _continue(model, cache, ids: torch.Tensor) -> torch.Tensor:
    """Logits of a 3-token block, then of 3 single tokens, through ``cache``."""
    with torch.no_grad():
        out = [model(input_ids=ids[:, :3], cache=cache, use_cache=True).logits]
        for t in range(3, 6):
            out.append(model(input_ids=ids[:, t : t + 1], cache=cache, use_cache=True).logits)
    return torch.cat(out, 1)


@pytest.mark.parametrize("cls", [KIVICache, SQuatCache, SQuatPreCache])
def test_replayed_prefill_matches_the_real_one(tiny_model, cls) -> None:
    model = tiny_model("llama", hidden_size=64, num_heads=4, num_kv_heads=2)  # d = 16, GQA 2
    ids = torch.randint(3, 60, (2, 30), generator=torch.Generator().manual_seed(0))
    opts = {"bits": 2, "group_size": G, "residual_length": R}
    real = cls(model, **opts)
    with torch.no_grad():
        first = model(input_ids=ids[:, :24], cache=real, use_cache=True).logits[:, -1]
    held = real.nbytes()
    expected = _continue(model, real, ids[:, 24:])

    states = record_prefill(model, ids[:, :24])
    assert len(states.queries) == model.config.num_hidden_layers
    assert states.queries[0].shape == (2, 4, 24, 16)
    assert torch.allclose(states.logits, first, atol=1e-6)
    assert torch.equal(states.positions, torch.arange(24).expand(2, 24))
    replayed = replay_prefill(cls(model, **opts), states)
    assert replayed.nbytes() == held
    assert torch.allclose(_continue(model, replayed, ids[:, 24:]), expected, atol=1e-6)
    real.restore_attention()
    replayed.restore_attention()
