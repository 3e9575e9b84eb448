"""Quantized KV caches for ``model.generate``: KIVI and SQuat as transformers Cache classes.

``model.generate(..., cache=SQuatCache(model, bits=2))`` (or :class:`KIVICache`, or
:class:`SQuatPreCache`, which quantizes keys before RoPE).
The maths are pure tensor functions (:mod:`burnish.kvcache.quant`, :mod:`burnish.kvcache.squat`);
the caches are thin ``Cache``/``CacheLayerMixin`` subclasses; queries and the padding mask
reach them through a registered attention function (:mod:`burnish.kvcache.attention`).

Sliding-window models (Mistral): the caches keep every token (no eviction, so memory grows
with the whole sequence), and the model's sliding-window mask still limits attention to the
window, so outputs follow the windowed model (tested). Gemma3's sliding layers: the prefill's
sliding mask hides the tokens before the window, and the cache takes them as padding (never
read again, and kept out of the quantization statistics); its full-attention layers are served
as usual.
"""

from burnish.kvcache.attention import (
    disable_kv_attention,
    enable_kv_attention,
    kv_attention,
    register_kv_attention,
)
from burnish.kvcache.kivi import KIVICache, KIVIConfig, KIVILayer
from burnish.kvcache.registry import KV_CACHES, build_kv_cache, cache_defaults, list_kv_caches
from burnish.kvcache.squat import SQuatCache, SQuatConfig, SQuatLayer
from burnish.kvcache.squat_pre import SQuatPreCache, SQuatPreLayer

__all__ = [
    "KV_CACHES",
    "KIVICache",
    "KIVIConfig",
    "KIVILayer",
    "SQuatCache",
    "SQuatConfig",
    "SQuatLayer",
    "SQuatPreCache",
    "SQuatPreLayer",
    "build_kv_cache",
    "cache_defaults",
    "disable_kv_attention",
    "enable_kv_attention",
    "kv_attention",
    "list_kv_caches",
    "register_kv_attention",
]
