"""The registry of KV-cache quantizers: name -> Cache class, and a factory for ``burnish eval``.

Each cache's options and their defaults are the fields of its config dataclass
(``KV_CACHES[name].config_class``: :class:`~burnish.kvcache.kivi.KIVIConfig`,
:class:`~burnish.kvcache.squat.SQuatConfig`); :func:`cache_defaults` reads them, so a caller
such as the CLI never restates them.
"""

from __future__ import annotations

from dataclasses import fields

from transformers import PreTrainedModel

from burnish.errors import ConfigError
from burnish.kvcache.kivi import KIVICache, QuantizedKVCache
from burnish.kvcache.squat import SQuatCache
from burnish.kvcache.squat_pre import SQuatPreCache

__all__ = ["KV_CACHES", "build_kv_cache", "cache_defaults", "list_kv_caches"]

KV_CACHES: dict[str, type[QuantizedKVCache]] = {
    "kivi": KIVICache,
    "squat": SQuatCache,
    "squat_pre": SQuatPreCache,
}


def list_kv_caches() -> list[str]:
    """Registered quantized-cache names (``"none"`` means transformers' default cache)."""
    return sorted(KV_CACHES)


def _cache_class(name: str) -> type[QuantizedKVCache]:
    if name not in KV_CACHES:
        raise ConfigError(f"unknown kv cache {name!r}; choose none, {', '.join(list_kv_caches())}")
    return KV_CACHES[name]


def cache_defaults(name: str) -> dict[str, object]:
    """``{option: default}`` of cache ``name``, from its config dataclass (``none``: ``{}``).

    E.g. ``cache_defaults("squat")["rank"] == 8``. ``value_group_size`` None means min(G, d).
    """
    if name in (None, "none"):
        return {}
    return {f.name: f.default for f in fields(_cache_class(name).config_class)}


def build_kv_cache(
    name: str, model: PreTrainedModel | None = None, **options: object
) -> QuantizedKVCache | None:
    """A fresh cache ``name`` (see :data:`KV_CACHES`; ``none``/None gives None) with ``options``.

    Options that are None are left at the config's default; an option the cache does not take
    (e.g. ``rank`` for ``kivi``) raises ConfigError.
    """
    if name in (None, "none"):
        return None
    cls = _cache_class(name)
    return cls(model, **{k: v for k, v in options.items() if v is not None})
