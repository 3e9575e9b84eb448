"""The registry of KV-cache quantizers: name -> Cache class, and a factory for ``burnish eval``."""

from __future__ import annotations

from transformers import PreTrainedModel
from transformers.cache_utils import Cache

from burnish.errors import ConfigError
from burnish.kvcache.kivi import KIVICache
from burnish.kvcache.squat import SQuatCache

__all__ = ["KV_CACHES", "build_kv_cache", "list_kv_caches"]

KV_CACHES: dict[str, type[Cache]] = {"kivi": KIVICache, "squat": SQuatCache}
_SQUAT_ONLY = ("rank", "lam", "block_size")


def list_kv_caches() -> list[str]:
    """Registered quantized-cache names (``"none"`` means transformers' default cache)."""
    return sorted(KV_CACHES)


def build_kv_cache(
    name: str, model: PreTrainedModel | None = None, **options: object
) -> Cache | None:
    """A fresh cache ``name`` (``kivi``/``squat``; ``none``/None gives None) with ``options``.

    Options a cache does not take (e.g. ``rank`` for ``kivi``) are ignored when None and
    rejected otherwise.
    """
    if name in (None, "none"):
        return None
    if name not in KV_CACHES:
        raise ConfigError(f"unknown kv cache {name!r}; choose none, {', '.join(list_kv_caches())}")
    opts = {k: v for k, v in options.items() if v is not None}
    if name != "squat":
        bad = [k for k in opts if k in _SQUAT_ONLY]
        if bad:
            raise ConfigError(f"kv cache {name!r} has no option {bad[0]!r} (SQuat only)")
    return KV_CACHES[name](model, **opts)
