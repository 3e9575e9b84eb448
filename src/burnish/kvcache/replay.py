"""Record a prefill once, then fill any number of caches with it (calibration and tuning).

The burnish caches attend the prefill in full precision and quantize it right after, so what
a cache holds after a prefill depends only on the keys, values and queries the model computed,
not on the cache. :func:`record_prefill` runs the model once and keeps, per layer, the keys and
values it gave ``cache.update`` (post-RoPE), the queries the ``burnish_kv`` attention saw and
the positions; :func:`replay_prefill` feeds them to a fresh cache through the same two calls
the model makes (``cache.update`` with the positions, then the query hand-off), so the cache
ends in the state the real prefill would leave (tested). Unpadded batches only (no mask).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import Cache

from burnish.kvcache.attention import hand_over, kv_attention, offer_prefill
from burnish.kvcache.rope import model_positions

__all__ = ["PrefillStates", "record_prefill", "replay_prefill"]


@dataclass
class PrefillStates:
    """Per layer ``keys``/``values [B, H_kv, T, d]`` (post-RoPE), ``queries [B, n_heads, T, d]``;
    ``positions [B, T]`` (the model's position_ids; None if it passes none); ``logits [B, V]``
    at the last prompt token (the same for every cache that attends the prefill in fp)."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    queries: list[torch.Tensor]
    positions: torch.Tensor | None
    logits: torch.Tensor


class _QueryInbox:
    """Receives one layer's prefill queries from the ``burnish_kv`` attention."""

    def __init__(self) -> None:
        self.query: torch.Tensor | None = None

    def observe_prefill(self, query: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        self.query = query.detach()


class _RecordingCache(DynamicCache):
    """A DynamicCache that also asks each layer's attention for its queries."""

    def __init__(self) -> None:
        super().__init__()
        self.inboxes: list[_QueryInbox] = []
        self.positions: torch.Tensor | None = None

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        out = super().update(key_states, value_states, layer_idx, *args, **kwargs)
        b, _, t, _ = key_states.shape
        self.positions = model_positions(kwargs, b, t)
        self.inboxes.append(_QueryInbox())
        offer_prefill(layer_idx, self.inboxes[-1])
        return out


def record_prefill(model: PreTrainedModel, input_ids: torch.Tensor) -> PrefillStates:
    """Run ``model`` once on ``input_ids [B, T]`` (no padding) and keep its prefill states."""
    cache = _RecordingCache()
    with kv_attention(model), torch.no_grad():
        out = model(input_ids=input_ids, cache=cache, use_cache=True, logits_to_keep=1)
    return PrefillStates(
        keys=[layer.keys for layer in cache.layers],
        values=[layer.values for layer in cache.layers],
        queries=[inbox.query for inbox in cache.inboxes],
        positions=cache.positions,
        logits=out.logits[:, -1],
    )


def replay_prefill(cache: Cache, states: PrefillStates) -> Cache:
    """Fill an empty ``cache`` with ``states`` as the model's prefill would; returns it.

    Per layer: ``cache.update(keys, values, i, kwargs={"position_ids": ...})`` (how transformers'
    attention modules call it), then the query hand-off a quantized layer asked for (none for
    caches that do not ask, e.g. DynamicCache or transformers' QuantizedCache).
    """
    kwargs = {} if states.positions is None else {"position_ids": states.positions}
    for i, (k, v, q) in enumerate(zip(states.keys, states.values, states.queries, strict=True)):
        cache.update(k, v, i, kwargs=kwargs)
        hand_over(i, q, None)
    return cache
