"""Scaled, skippable decoder layers: reversible wrapping, skipped blocks not computed and
holding no KV (stock and quantized caches), generate with cache = without, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import DynamicCache, Gemma3ForCausalLM, Gemma3TextConfig
from transformers.cache_utils import DummyLayer

from burnish.errors import ConfigError
from burnish.kvcache import KIVICache, SQuatCache
from burnish.models import load_model, save_model
from burnish.models.skipping import (
    SKIP_CONFIG_FILE,
    ScaledLayer,
    SkipConfig,
    decoder_layer_list,
    scaled_layers,
    unwrap_scaled,
    wrap_scaled,
)

ARCHS = ["llama", "qwen2", "mistral", "gemma3"]


def tiny_gemma3(layers: int = 4) -> Gemma3ForCausalLM:
    """Gemma3 with sliding (window 6) and full layers, sandwich norms."""
    config = Gemma3TextConfig(
        vocab_size=103, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=6,
        layer_types=["sliding_attention", "full_attention"] * (layers // 2),
        query_pre_attn_scalar=16, max_position_embeddings=256, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    return Gemma3ForCausalLM(config).eval()


@pytest.fixture
def make(tiny_model):
    def build(arch: str, layers: int = 4):
        if arch == "gemma3":
            return tiny_gemma3(layers)
        return tiny_model(arch, num_layers=layers)

    return build


def perturb(model, skip: list[int], seed: int = 0) -> None:
    """Random non-unit scales and the given skipped attention blocks."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for i, layer in enumerate(scaled_layers(model)):
            layer.scales.copy_(1 + 0.3 * (torch.rand(4, generator=g) - 0.5))
            layer.skip_attention = i in skip


IDS = torch.randint(3, 100, (2, 13), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("arch", ARCHS)
def test_wrapping_is_exact_and_unwrapping_gives_back_the_model(make, arch: str) -> None:
    model = make(arch)
    originals = list(decoder_layer_list(model))
    names = list(model.state_dict())
    with torch.no_grad():
        ref = model(IDS).logits
        wrap_scaled(model)
        assert all(isinstance(m, ScaledLayer) for m in decoder_layer_list(model))
        assert torch.equal(model(IDS).logits, ref)  # unit scales: bit-identical
        perturb(model, [1])
        assert not torch.allclose(model(IDS).logits, ref)
        unwrap_scaled(model)
        assert torch.equal(model(IDS).logits, ref)
    assert list(decoder_layer_list(model)) == originals
    assert list(model.state_dict()) == names


@pytest.mark.parametrize("arch", ARCHS)
def test_a_skipped_attention_is_never_run_and_holds_no_kv(make, arch: str) -> None:
    model = make(arch)
    wrap_scaled(model)
    perturb(model, [0, 2])
    calls: list[int] = []
    for i, layer in enumerate(scaled_layers(model)):
        layer.self_attn.register_forward_hook(lambda *a, i=i: calls.append(i))
    with torch.no_grad():
        out = model(IDS, use_cache=True)
    assert sorted(set(calls)) == [1, 3]
    cache = out.past_key_values
    assert [type(x) is DummyLayer for x in cache.layers] == [True, False, True, False]
    assert cache.layers[0].keys is None and cache.layers[2].keys is None
    assert cache.get_seq_length() == IDS.shape[1]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("skip", [[0], [1, 2], [0, 1, 3]])
def test_generate_with_cache_equals_without(make, arch: str, skip: list[int]) -> None:
    model = make(arch)
    wrap_scaled(model)
    perturb(model, skip)
    kw = {"max_new_tokens": 10, "do_sample": False, "pad_token_id": 0}
    cached = model.generate(IDS, use_cache=True, **kw)
    plain = model.generate(IDS, use_cache=False, **kw)
    assert torch.equal(cached, plain)


@pytest.mark.parametrize("cache_class", [KIVICache, SQuatCache])
@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_quantized_caches_store_nothing_for_skipped_layers(make, cache_class, arch) -> None:
    model = make(arch)
    wrap_scaled(model)
    perturb(model, [])
    opts = {"bits": 4, "group_size": 4, "residual_length": 4}
    kw = {"max_new_tokens": 8, "do_sample": False, "pad_token_id": 0}
    with cache_class(model, **opts) as full:
        model.generate(IDS, cache=full, **kw)
    perturb(model, [0, 3])
    with cache_class(model, **opts) as cache:
        out = model.generate(IDS, cache=cache, **kw)
    assert [type(x) is DummyLayer for x in cache.layers] == [True, False, False, True]
    assert cache.nbytes()["total"] < 0.6 * full.nbytes()["total"]
    assert out.shape == (2, IDS.shape[1] + 8)


def test_a_cache_filled_by_the_full_model_is_refused(make) -> None:
    model = make("llama")
    cache = DynamicCache()
    with torch.no_grad():
        model(IDS, cache=cache, use_cache=True)
        wrap_scaled(model)
        perturb(model, [1])
        with pytest.raises(ConfigError, match="already holds keys for layer 1"):
            model(IDS[:, :1], cache=cache, use_cache=True)


def test_checkpoints_keep_stock_weights_plus_hopscotch_json(make, tok, tmp_path) -> None:
    model = make("llama")
    wrap_scaled(model)
    perturb(model, [1])
    with torch.no_grad():
        want = model(IDS).logits
    path = save_model(model, tok, tmp_path / "m")
    saved = json.loads((path / SKIP_CONFIG_FILE).read_text())
    assert saved["skip_attention"] == [1] and len(saved["scales"]) == 4
    loaded, _ = load_model(path)
    assert [m.skip_attention for m in scaled_layers(loaded)] == [False, True, False, False]
    with torch.no_grad():
        torch.testing.assert_close(loaded(IDS).logits, want, rtol=0, atol=1e-6)
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if k.endswith(".scales")]  # noqa: SIM118


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"num_layers": 4, "skip_attention": [7]}, "names layer"),
        ({"num_layers": 4, "scales": [[1, 1, 1]]}, "rows of 4"),
        ({"num_layers": 4, "speed": "fast"}, "unknown field"),
        ({"skip_attention": [1]}, "integer `num_layers`"),
    ],
)
def test_bad_skip_configs_get_one_clear_error(doc, match) -> None:
    with pytest.raises(ConfigError, match=match):
        SkipConfig.from_json(json.dumps(doc))


def test_a_skip_config_for_another_depth_is_refused(make, tok, tmp_path) -> None:
    path = save_model(make("llama"), tok, tmp_path / "m")
    (path / SKIP_CONFIG_FILE).write_text(SkipConfig(num_layers=6).to_json())
    with pytest.raises(ConfigError, match="for 6 layers, the model has 4"):
        load_model(path)
