"""One source of defaults: the caches take their options from KIVIConfig / SQuatConfig."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from burnish.errors import ConfigError
from burnish.kvcache import (
    KV_CACHES,
    KIVICache,
    KIVIConfig,
    SQuatCache,
    SQuatConfig,
    build_kv_cache,
    cache_defaults,
)


@pytest.mark.parametrize(
    ("cache_cls", "config_cls"), [(KIVICache, KIVIConfig), (SQuatCache, SQuatConfig)]
)
def test_cache_options_are_the_config_fields(cache_cls, config_cls) -> None:
    """No cache restates a default: its signature is (model, config, **options), a bare cache
    carries the config's defaults, and options or a ready config are passed through."""
    assert list(inspect.signature(cache_cls).parameters) == ["model", "config", "options"]
    assert cache_cls.config_class is config_cls
    assert cache_cls().config == config_cls()
    assert cache_cls(None, bits=4, group_size=8, residual_length=16).config == config_cls(
        bits=4, group_size=8, residual_length=16
    )
    ready = config_cls(bits=4)
    assert cache_cls(config=ready).config is ready
    with pytest.raises(ConfigError, match=f"{cache_cls.__name__} has no option 'bitz'"):
        cache_cls(bitz=2)
    with pytest.raises(ConfigError, match="either config= or options"):
        cache_cls(config=ready, bits=2)


def test_squat_call_style_and_kivi_rejects_squat_options() -> None:
    assert SQuatCache(None, bits=2, rank=4).config == SQuatConfig(bits=2, rank=4)
    with pytest.raises(ConfigError, match="KIVICache has no option 'rank'; its options are bits"):
        KIVICache(rank=4)
    with pytest.raises(ConfigError, match="takes a SQuatConfig"):
        SQuatCache(config=KIVIConfig())


def test_cache_defaults_read_the_config() -> None:
    """``cache_defaults(name)`` is what the CLI reads instead of restating defaults."""
    for name, cls in KV_CACHES.items():
        assert cache_defaults(name) == dataclasses.asdict(cls.config_class())
    assert cache_defaults("squat")["rank"] == SQuatConfig().rank
    assert set(cache_defaults("kivi")) < set(cache_defaults("squat"))
    assert cache_defaults("none") == {}
    with pytest.raises(ConfigError, match="unknown kv cache"):
        cache_defaults("gear")
    # build_kv_cache: None leaves an option at its default (what an unset CLI flag passes)
    cache = build_kv_cache("squat", None, bits=4, rank=None, lam=None)
    assert cache.config == SQuatConfig(bits=4)


def test_cache_switches_attention_only_while_used(tiny_model) -> None:
    """KIVICache(model) switches the model to burnish_kv; leaving the ``with`` block (or
    restore_attention) switches it back."""
    from burnish.kvcache import KIVICache

    model = tiny_model("llama", attn="eager")
    with KIVICache(model, bits=2) as cache:
        assert model.config._attn_implementation == "burnish_kv"
        assert cache.config.bits == 2
    assert model.config._attn_implementation == "eager"
    cache = KIVICache(model)
    cache.restore_attention()
    cache.restore_attention()  # idempotent
    assert model.config._attn_implementation == "eager"
