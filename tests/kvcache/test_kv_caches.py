"""KIVI, SQuat and SQuat-pre caches inside model.generate: parity, padding, bytes,
quantize-once, errors."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from transformers import DynamicCache

from burnish.errors import ConfigError
from burnish.eval import evaluate, generate_chat
from burnish.kvcache import (
    KV_CACHES,
    KIVICache,
    KIVILayer,
    SQuatCache,
    SQuatLayer,
    SQuatPreCache,
    build_kv_cache,
    disable_kv_attention,
    kv_attention,
    quant,
)
from burnish.kvcache import kivi as kivi_mod
from burnish.models import load_model
from burnish.models.zoo import resolve_model

CACHES = [KIVICache, SQuatCache, SQuatPreCache]
PROMPTS = ["chain 7+3*2-5", "chain 9*2", "chain 4-8+1*3"]


@pytest.fixture(scope="module")
def zoo_llama():
    return load_model(resolve_model("arith-policy"))


@pytest.fixture(scope="module")
def zoo_qwen2():
    return load_model(resolve_model("qwen2-mix"))


def _greedy(model, ids, cache=None, n=12, **kw):
    """Greedy generate with ``cache`` (transformers 5.24's name for a custom KV cache)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return model.generate(
            ids, max_new_tokens=n, do_sample=False, cache=cache, pad_token_id=0, **kw
        )


@pytest.mark.parametrize("cache_cls", CACHES)
def test_mistral_sliding_window_is_honoured(tiny_model, cache_cls) -> None:
    """Decoding past Mistral's sliding window: the quantized cache keeps every token, but the
    model's sliding-window mask still limits attention to the window, so the logits follow
    the windowed model (up to 4-bit error), not an unwindowed one."""
    model = tiny_model("mistral", num_heads=4, num_kv_heads=2)
    ids = torch.randint(3, 100, (1, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        unwindowed = model(ids).logits[:, 12:]
        model.config.sliding_window = 6
        windowed = model(ids).logits[:, 12:]
        with kv_attention(model):
            cache = cache_cls(model, bits=4, group_size=4, residual_length=4)
            steps = [model(ids[:, :12], cache=cache, use_cache=True).logits[:, -1:]]
            for t in range(12, 39):
                steps.append(model(ids[:, t : t + 1], cache=cache, use_cache=True).logits)
    decoded = torch.cat(steps[1:], 1)  # logits at positions 12..38, one token at a time
    assert (windowed - unwindowed).abs().max() > 0.1  # the window matters here
    assert (decoded - windowed[:, :27]).abs().max() < 0.05
    assert (decoded - unwindowed[:, :27]).abs().max() > 0.1


@pytest.mark.parametrize("cache_cls", CACHES)
@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral"])
def test_unquantized_matches_dynamic_cache_tiny(tiny_model, cache_cls, arch) -> None:
    """R >= sequence length: nothing is quantized, greedy output equals DynamicCache's."""
    model = tiny_model(arch, num_heads=4, num_kv_heads=2)
    ids = torch.randint(3, 100, (2, 20), generator=torch.Generator().manual_seed(0))
    ref = _greedy(model, ids, DynamicCache(), n=10)
    out = _greedy(model, ids, cache_cls(model, bits=2, group_size=8, residual_length=64), n=10)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_squat_bf16_and_fp32_generate(tiny_model, dtype) -> None:
    model = tiny_model("llama").to(dtype)
    ids = torch.randint(3, 100, (1, 30), generator=torch.Generator().manual_seed(1))
    ref = _greedy(model, ids, n=8)
    assert torch.equal(_greedy(model, ids, SQuatCache(model, residual_length=64), n=8), ref)
    cache = SQuatCache(model, bits=2, group_size=8, residual_length=8, rank=4, block_size=4)
    out = _greedy(model, ids, cache, n=8)
    assert out.shape == ref.shape
    layer = cache.layers[0]
    assert layer.key_q.codes.shape[-2] > 0 and layer.keys.dtype == dtype


@pytest.mark.parametrize("cache_cls", CACHES)
@pytest.mark.parametrize("fixture", ["zoo_llama", "zoo_qwen2"])
def test_unquantized_matches_dynamic_cache_zoo(request, cache_cls, fixture, tok) -> None:
    model, tok = request.getfixturevalue(fixture)
    ref = generate_chat(model, tok, PROMPTS, 40)
    got = generate_chat(model, tok, PROMPTS, 40, cache=cache_cls(model, residual_length=128))
    assert got == ref


def test_batched_left_padding_matches_unbatched(zoo_llama) -> None:
    """Per row, batched (left-padded) generation with the caches equals unbatched generation."""
    model, tok = zoo_llama
    for cls in CACHES:
        batched = generate_chat(model, tok, PROMPTS, 40, cache=cls(model, residual_length=128))
        for p, row in zip(PROMPTS, batched, strict=True):
            alone = generate_chat(model, tok, [p], 40, cache=cls(model, residual_length=128))
            assert alone == [row]


@pytest.mark.parametrize("cache_cls", CACHES)
def test_padding_does_not_change_quantization_statistics(zoo_llama, cache_cls) -> None:
    """2-bit: whatever the padded slots hold, real tokens get the same codes and statistics."""
    model, tok = zoo_llama
    texts = [
        tok.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in PROMPTS
    ]
    side, tok.padding_side = tok.padding_side, "left"
    try:
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tok.padding_side = side
    states = []
    for pad_id in (0, 57):  # same mask, different garbage in the padded slots
        ids = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, pad_id)
        cache = cache_cls(model, bits=2, group_size=4, residual_length=4)
        with torch.no_grad():
            model(input_ids=ids, attention_mask=enc["attention_mask"], cache=cache)
        layer = cache.layers[1]
        assert not layer.pending and layer.valid is not None
        states.append((layer.key_q, layer.value_q))
    (k0, v0), (k1, v1) = states
    assert k0.codes.shape[-2] > 0
    for a, b in ((k0, k1), (v0, v1)):
        assert torch.equal(a.codes, b.codes)
        assert torch.equal(a.scale, b.scale) and torch.equal(a.zero, b.zero)
    if cache_cls is KIVICache:  # without the mask hand-off, padding does move the stats
        disable_kv_attention(model)
        blind = KIVICache(None, bits=2, group_size=4, residual_length=4)
        with torch.no_grad():
            model(input_ids=ids, attention_mask=enc["attention_mask"], cache=blind)
        blind.layers[1].finish_prefill()
        row = int((enc["attention_mask"][:, 0] == 0).nonzero()[0])
        assert not torch.equal(blind.layers[1].key_q.scale[row], k1.scale[row])


@pytest.mark.parametrize("cache_cls", CACHES)
def test_each_token_quantized_once(zoo_llama, cache_cls, monkeypatch) -> None:
    model, tok = zoo_llama
    counted = {"keys": 0, "values": 0}
    layer_cls = KIVILayer if cache_cls is KIVICache else SQuatLayer
    real_qk, real_qv = layer_cls.quantize_keys, quant.quantize_per_token

    def count_keys(self, chunks, rows):  # chunks [B', H, n, G, d] of batch rows `rows`
        counted["keys"] += chunks.shape[2] * chunks.shape[3] if self.layer_idx == 0 else 0
        return real_qk(self, chunks, rows)

    def count_values(x, bits, group):
        counted["values"] += x.shape[-2]
        return real_qv(x, bits, group)

    monkeypatch.setattr(layer_cls, "quantize_keys", count_keys)
    monkeypatch.setattr(kivi_mod.quant, "quantize_per_token", count_values)
    cache = cache_cls(model, bits=2, group_size=4, residual_length=4)
    texts = tok.apply_chat_template(
        [{"role": "user", "content": PROMPTS[0]}], tokenize=False, add_generation_prompt=True
    )
    ids = tok(texts, return_tensors="pt", add_special_tokens=False)["input_ids"]
    snapshots = []
    with torch.no_grad():
        out = model(input_ids=ids, cache=cache)
        nxt = out.logits[:, -1:].argmax(-1)
        for _ in range(20):
            out = model(input_ids=nxt, cache=cache)
            nxt = out.logits[:, -1:].argmax(-1)
            snapshots.append(cache.layers[0].key_q.codes.clone())
    layer = cache.layers[0]
    n_layers = len(cache.layers)
    assert counted["keys"] == layer.key_q.codes.shape[-2]  # layer 0 only
    assert counted["values"] == n_layers * layer.value_q.codes.shape[-2]
    assert layer.get_seq_length() == ids.shape[1] + 20
    for earlier, later in itertools.pairwise(snapshots):
        assert torch.equal(later[..., : earlier.shape[-2], :], earlier)  # append-only
    assert 4 <= layer.keys.shape[-2] < 8 and layer.values.shape[-2] == 4


@pytest.mark.parametrize("cache_cls", CACHES)
def test_bytes_match_theory(tiny_model, cache_cls) -> None:
    model = tiny_model("llama", hidden_size=64, num_heads=4, num_kv_heads=2)  # d = 16
    b, h, d, g, r, t = 2, 2, 16, 8, 8, 45
    ids = torch.randint(3, 100, (b, t), generator=torch.Generator().manual_seed(0))
    cache = cache_cls(model, bits=2, group_size=g, residual_length=r)
    with torch.no_grad():
        model(input_ids=ids, cache=cache)
    tk = (t - r) // g * g  # quantized keys: whole chunks
    tv = t - r  # quantized values
    per_head = {
        "codes": (tk + tv) * d * 2 // 8,
        "scales": (tk // g) * d * 2 + tv * (d // g) * 2,
        "residual": ((t - tk) + (t - tv)) * d * 4,
    }
    per_head["zero_points"] = per_head["scales"]
    if cache_cls is not KIVICache:  # Q_hat [r, d] and one r x r weight per block boundary, fp32
        rank, blocks = cache.config.rank, d // cache.config.block_size
        per_head["subspace"] = (rank * d + (blocks - 1) * rank * rank) * 4
    per_row = {"bookkeeping": 2 * 8}  # int64 left padding and chunk count (no padding mask)
    if cache_cls is SQuatPreCache:  # and the int32 RoPE position of every slot
        per_row["bookkeeping"] += 4 * t
    got = cache.nbytes()
    for key, value in per_head.items():
        assert got[key] == value * b * h * 2, key  # x 2 layers
    assert got["bookkeeping"] == per_row["bookkeeping"] * b * 2
    assert set(got) == {*per_head, *per_row, "total"}
    assert got["total"] == (sum(per_head.values()) * h + sum(per_row.values())) * b * 2
    fp16 = 2 * t * d * 2 * b * h * 2
    # fp32 residual here; still well under fp32 (SQuat's subspace is a fixed cost per head,
    # large against 45 tokens of d = 16)
    assert got["total"] - got.get("subspace", 0) < 0.6 * fp16 * 2


def test_two_bit_ratio_near_paper_for_long_context() -> None:
    """G = R = 32, d = 128, 4096 tokens, fp16 residual: about 19-21% of the fp16 cache."""
    layer = KIVILayer(KIVICache().config)
    x = torch.randn(1, 1, 4096, 128, dtype=torch.float16)
    layer.update(x, x)
    layer.finish_prefill()
    ratio = layer.nbytes()["total"] / (2 * x.numel() * 2)
    assert 0.18 < ratio <= 0.21


@pytest.mark.parametrize("cache_cls", CACHES)
def test_beam_search_and_crop(tiny_model, cache_cls) -> None:
    model = tiny_model("llama")
    ids = torch.randint(3, 100, (1, 20), generator=torch.Generator().manual_seed(2))
    ref = _greedy(model, ids, DynamicCache(), n=8, num_beams=3)
    out = _greedy(model, ids, cache_cls(model, residual_length=64), n=8, num_beams=3)
    assert torch.equal(out, ref)
    # reorder: rows follow the beam index exactly
    cache = cache_cls(model, bits=2, group_size=4, residual_length=4)
    with torch.no_grad():
        model(input_ids=ids.repeat(3, 1) + torch.arange(3)[:, None], cache=cache)
    before = cache.layers[0].full_keys()
    cache.reorder_cache(torch.tensor([2, 0, 0]))
    assert torch.equal(cache.layers[0].full_keys(), before[[2, 0, 0]])
    # crop within the fp residual is exact; deeper crops are refused
    n = cache.get_seq_length()
    kept = cache.layers[0].full_keys()[..., : n - 3, :]
    cache.crop(-3)
    assert cache.get_seq_length() == n - 3
    assert torch.equal(cache.layers[0].full_keys(), kept)
    with pytest.raises(ConfigError, match="crop"):
        cache.crop(-20)


def test_squat_without_queries_fails_clearly(tiny_model) -> None:
    model = tiny_model("llama")
    cache = SQuatCache(None, group_size=4, residual_length=4)
    with pytest.raises(ConfigError, match="queries"), torch.no_grad():
        model(input_ids=torch.randint(3, 100, (1, 12)), cache=cache)
        model(input_ids=torch.randint(3, 100, (1, 1)), cache=cache)


def test_bad_options_raise_config_errors(tiny_model) -> None:
    model = tiny_model("llama")  # head dim 8
    with pytest.raises(ConfigError, match="2 or 4"):
        KIVICache(bits=3)
    with pytest.raises(ConfigError, match="multiple of group_size"):
        SQuatCache(group_size=32, residual_length=48)
    with pytest.raises(ConfigError, match="larger than the head dimension"):
        SQuatCache(model, rank=9)
    with pytest.raises(ConfigError, match="unknown kv cache"):
        build_kv_cache("gear", model)
    with pytest.raises(ConfigError, match="KIVICache has no option 'rank'"):
        build_kv_cache("kivi", model, rank=4)


def test_registry_and_attention_switch_are_reversible(tiny_model, tok) -> None:
    """Every registered cache generates from the registry; the model's attention is restored
    afterwards. ``evaluate`` builds its caches without the model, which kivi and squat accept;
    squat_pre needs the model's rotary embedding and says so."""
    model = tiny_model("llama")
    assert sorted(KV_CACHES) == ["kivi", "squat", "squat_pre"]
    opts = {"bits": 4, "group_size": 4, "residual_length": 4}
    for name in ("kivi", "squat"):
        res = evaluate(model, tok, ["counting"], n_problems=3, kv_cache=name, kv_options=opts)
        assert (res["counting"].accuracy * 3).is_integer()  # k of the 3 problems right
        assert model.config._attn_implementation == "sdpa"
    for name in KV_CACHES:
        with build_kv_cache(name, model, **opts) as cache:
            assert model.config._attn_implementation == "burnish_kv"
            out = generate_chat(model, tok, PROMPTS, 16, cache=cache)
        assert len(out) == len(PROMPTS) and cache.layers[0].key_q.codes.shape[-2] > 0
        assert model.config._attn_implementation == "sdpa"
    with pytest.raises(ConfigError, match="needs the model"):
        build_kv_cache("squat_pre", None, **opts)
    with kv_attention(model):
        assert model.config._attn_implementation == "burnish_kv"
    assert model.config._attn_implementation == "sdpa"


def test_cli_eval_with_quantized_cache(model_dir, capsys, monkeypatch) -> None:
    from burnish.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    args = ["eval", str(model_dir), "--tasks", "counting", "--n", "3", "--kv-cache", "squat"]
    rc = main([*args, "--kv-bits", "2", "--kv-group-size", "4", "--kv-residual", "4"])
    out = capsys.readouterr().out
    assert rc == 0 and "counting" in out
    rc = main([*args[:6], "--kv-cache", "kivi", "--kv-bits", "3"])
    assert rc == 2 and "2 or 4" in capsys.readouterr().err
