"""How the prefill's queries and padding mask reach a quantized cache layer.

Why an attention function: in transformers 5.x an attention module calls
``cache.update(key, value, layer_idx, ...)`` *before* the attention function, and neither
the queries nor the attention mask are passed to the cache. SQuat needs the prompt's queries
(to build the query subspace), and both KIVI and SQuat need the padding mask (so left padding
does not distort per-channel statistics). The public extension point that sees both is the
attention function, so burnish registers one, ``"burnish_kv"``, through
``AttentionInterface.register`` (with the sdpa mask builder through
``AttentionMaskInterface.register``). It is exactly transformers' sdpa attention, plus one
step: if the cache layer that was just updated with a prefill asked for its queries, hand
them over (with the mask) before attending.

The hand-off is a per-thread slot, not a global registry: the cache layer fills it in
``update`` and the attention function of the same layer (``module.layer_idx``), which always
runs next on the same thread, empties it. Nothing in transformers is patched; the model's
attention is switched with ``model.set_attn_implementation`` and switched back by
:func:`kv_attention` (a context manager). With any other cache ``"burnish_kv"`` behaves as
plain sdpa, so leaving it switched on is harmless.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

__all__ = [
    "ATTENTION_NAME",
    "disable_kv_attention",
    "enable_kv_attention",
    "hand_over",
    "kv_attention",
    "offer_prefill",
    "register_kv_attention",
]

ATTENTION_NAME = "burnish_kv"
_slot = threading.local()


class PrefillObserver(Protocol):
    def observe_prefill(self, query: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        """Receive the prefill's queries ``[B, n_heads, T, d]`` and its attention mask."""


def offer_prefill(layer_idx: int, layer: PrefillObserver) -> None:
    """Ask the next ``burnish_kv`` attention call of ``layer_idx`` to hand its queries over."""
    _slot.pending = (layer_idx, weakref.ref(layer))


def _take(layer_idx: int | None) -> PrefillObserver | None:
    pending = getattr(_slot, "pending", None)
    if pending is None or (layer_idx is not None and pending[0] != layer_idx):
        return None
    _slot.pending = None
    return pending[1]()


def hand_over(
    layer_idx: int | None, query: torch.Tensor, attention_mask: torch.Tensor | None
) -> bool:
    """Give the prefill's queries ``[B, n_heads, T, d]`` and mask to the cache layer that asked
    for them (what ``burnish_kv`` does before attending; also used to replay a recorded
    prefill, see :mod:`burnish.kvcache.replay`). Returns whether a layer was waiting."""
    layer = _take(layer_idx)
    if layer is not None:
        layer.observe_prefill(query, attention_mask)
    return layer is not None


def burnish_kv_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: object,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """sdpa attention that first hands a pending prefill's queries to its cache layer."""
    hand_over(getattr(module, "layer_idx", None), query, attention_mask)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def register_kv_attention() -> str:
    """Register ``"burnish_kv"`` with transformers (idempotent); returns the name."""
    AttentionInterface.register(ATTENTION_NAME, burnish_kv_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    return ATTENTION_NAME


def enable_kv_attention(model: PreTrainedModel) -> str:
    """Switch ``model`` to the ``burnish_kv`` attention; returns the previous implementation."""
    previous = model.config._attn_implementation
    if previous != ATTENTION_NAME:
        model.set_attn_implementation(register_kv_attention())
    return previous


def disable_kv_attention(model: PreTrainedModel, previous: str = "sdpa") -> None:
    """Switch ``model`` back to ``previous`` (what :func:`enable_kv_attention` returned)."""
    if model.config._attn_implementation != previous:
        model.set_attn_implementation(previous)


@contextmanager
def kv_attention(model: PreTrainedModel) -> Iterator[PreTrainedModel]:
    """``with kv_attention(model): model.generate(..., cache=SQuatCache(...))``."""
    previous = enable_kv_attention(model)
    try:
        yield model
    finally:
        disable_kv_attention(model, previous)
