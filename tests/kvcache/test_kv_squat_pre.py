"""SQuat-pre: keys quantized before RoPE with the model's own rotary embedding, rotated back.

Exactness of the un-rotate / re-rotate round trip against transformers' apply_rotary_pos_emb,
a layer whose pre-RoPE keys quantize without error (so full_keys() must give back exactly the
post-RoPE keys it was given, at each row's own positions under left padding), the pre-RoPE
query subspace, the positions generate really uses, Gemma3's per-layer-type RoPE, and the
ConfigErrors for models it cannot serve.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from transformers import (
    DynamicCache,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
)
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from burnish.errors import ConfigError
from burnish.kvcache import SQuatConfig, SQuatLayer, SQuatPreCache, SQuatPreLayer, kv_attention
from burnish.kvcache.rope import RopeFrame, rotate, unrotate
from burnish.kvcache.squat import query_subspace

G = R = 4
D = 16


def _rope(**rope: object) -> RopeFrame:
    """A RopeFrame over a Llama rotary module of head dim 16 (``rope``: rope_parameters)."""
    params = {"rope_type": "default", "rope_theta": 10000.0, **rope}
    config = LlamaConfig(hidden_size=64, num_attention_heads=4, rope_parameters=params)
    return RopeFrame(LlamaRotaryEmbedding(config))


def _post_rope(x: torch.Tensor, frame: RopeFrame, positions: torch.Tensor) -> torch.Tensor:
    """``x [B, H, T, d]`` rotated by transformers' own apply_rotary_pos_emb at ``[B, T]``."""
    cos, sin = frame.cos_sin(positions, 0)
    return apply_rotary_pos_emb(x, x, cos, sin)[0]


@pytest.mark.parametrize(
    "rope",
    [{}, {"rope_type": "linear", "factor": 4.0}, {"rope_type": "yarn", "factor": 4.0}],
)
def test_unrotate_inverts_transformers_rope(rope: dict) -> None:
    """rotate() is apply_rotary_pos_emb; unrotate() inverts it to rounding, also for yarn,
    whose cos/sin carry an attention scaling (cos^2 + sin^2 != 1)."""
    frame = _rope(**rope)
    x = torch.randn(2, 3, 40, D, generator=torch.Generator().manual_seed(0))
    pos = torch.stack([torch.arange(40), torch.arange(40) + 1000])  # [2, 40]
    cos, sin = frame.cos_sin(pos, 0)
    y = apply_rotary_pos_emb(x, x, cos, sin)[0]
    assert torch.allclose(rotate(x, cos[:, None], sin[:, None]), y, atol=1e-6)
    assert torch.allclose(unrotate(y, cos[:, None], sin[:, None]), x, atol=1e-5)
    assert (y - x).abs().max() > 0.5  # the rotation is not the identity
    if rope.get("rope_type") == "yarn":
        assert (cos**2 + sin**2 - 1).abs().max() > 0.01


def _chunk_constant_keys(lengths: tuple[int, ...], seed: int) -> list[torch.Tensor]:
    """Per row, pre-RoPE keys ``[1, 2, L, D]`` constant within each G-token chunk of the row's
    own tokens (fp16 values): per-channel min-max quantizes them without error."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        chunks = torch.randn(1, 2, -(-n // G), 1, D, generator=gen).half().float()
        out.append(chunks.expand(-1, -1, -1, G, -1).reshape(1, 2, -1, D)[:, :, :n])
    return out


def test_round_trip_is_exact_when_pre_rope_keys_quantize_exactly() -> None:
    """Left-padded batch, positions as generate gives them (own tokens at 0, 1, ...): after the
    prefill and every decode step, full_keys() of SQuat-pre returns the post-RoPE keys it was
    given (to rotation rounding), while post-RoPE SQuat on the same keys errs by O(1): the
    keys really are quantized before RoPE, at the right per-row positions."""
    lengths, steps = (21, 14, 17), 9
    t0 = max(lengths)
    frame = _rope()
    pre = _chunk_constant_keys(tuple(n + steps for n in lengths), seed=1)
    own_pos = [torch.arange(n + steps)[None] for n in lengths]
    post = [_post_rope(k, frame, p) for k, p in zip(pre, own_pos, strict=True)]  # [1, 2, L, D]
    pads = [t0 - n for n in lengths]
    keys = torch.cat(
        [torch.cat([torch.full((1, 2, p, D), 7.0), k[:, :, :n]], 2)
         for k, p, n in zip(post, pads, lengths, strict=True)]
    )  # fmt: skip
    mask = torch.arange(t0)[None, :] >= torch.tensor(pads)[:, None]  # [B, T0]
    positions = (mask.long().cumsum(1) - 1).clamp(min=0)
    queries = torch.randn(3, 4, t0, D, generator=torch.Generator().manual_seed(2))
    config = SQuatConfig(bits=2, group_size=G, residual_length=R, rank=4, lam=1.0)
    layers = {"pre": SQuatPreLayer(config, rope=frame), "post": SQuatLayer(config)}
    for layer in layers.values():
        layer.update(keys, keys, kwargs={"position_ids": positions})
        layer.observe_prefill(queries, mask[:, None, None, :])
    for step in range(steps + 1):
        if step:
            new = torch.cat(
                [k[:, :, n + step - 1 : n + step] for k, n in zip(post, lengths, strict=True)]
            )
            pos = torch.tensor([[n + step - 1] for n in lengths])
            for layer in layers.values():
                layer.update(new, new, kwargs={"position_ids": pos})
        got = {name: layer.full_keys() for name, layer in layers.items()}
        for i, (k, p, n) in enumerate(zip(post, pads, lengths, strict=True)):
            want = k[0, :, : n + step]
            assert torch.allclose(got["pre"][i, :, p:], want, atol=1e-5), (step, i)
            assert (got["post"][i, :, p:] - want).abs().max() > 0.1
    assert layers["pre"].chunks.tolist() == [(n + steps - R) // G for n in lengths]


def test_query_subspace_is_built_from_pre_rope_queries() -> None:
    """The prefill's post-RoPE queries are un-rotated before the SVD: Q_hat equals the subspace
    of the pre-RoPE queries (which share one low-rank basis; post-RoPE they do not)."""
    frame = _rope()
    gen = torch.Generator().manual_seed(3)
    q_pre = torch.randn(1, 4, 24, 2, generator=gen) @ torch.randn(2, D, generator=gen)
    pos = torch.arange(24)[None]
    layer = SQuatPreLayer(SQuatConfig(group_size=G, residual_length=R, rank=2), rope=frame)
    k = torch.randn(1, 2, 24, D, generator=gen)
    layer.update(k, k, kwargs={"position_ids": pos})
    layer.observe_prefill(_post_rope(q_pre, frame, pos), None)
    want = query_subspace(q_pre[0].reshape(2, -1, D), 2)  # [H, r, d]: query heads 2j, 2j + 1
    got = layer.q_hat[0]
    proj = got @ torch.linalg.pinv(want) @ want  # rows of got projected on want's row space
    assert torch.allclose(proj, got, atol=1e-4)
    assert torch.allclose(got.norm(dim=(-1, -2)), want.norm(dim=(-1, -2)), rtol=1e-4)


def _generate(model, ids, mask, cache, n: int = 10) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.generate(
            ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
            cache=cache, pad_token_id=0,
        )  # fmt: skip


def test_generate_records_the_positions_the_model_used(tiny_model) -> None:
    """Left-padded generate on a tiny random Llama: the layer's positions are the model's
    (mask cumsum: each row's own tokens at 0, 1, ...), and a 2-bit cache quantized chunks."""
    model = tiny_model("llama", hidden_size=64, num_heads=4, num_kv_heads=2)
    ids = torch.randint(3, 100, (2, 26), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :9] = 0
    cache = SQuatPreCache(model, bits=2, group_size=G, residual_length=R, rank=4)
    _generate(model, ids, mask, cache)
    layer = cache.layers[1]
    t = layer.get_seq_length()
    assert t == 26 + 9
    assert layer.positions[0].tolist() == list(range(t))
    assert layer.positions[1, 9:].tolist() == list(range(t - 9))
    assert layer.chunks.tolist() == [(t - R) // G, (t - 9 - R) // G]


def _tiny_gemma3() -> Gemma3ForCausalLM:
    """Gemma3 with alternating sliding (window 6, RoPE base 10k) and full layers (base 1M)."""
    config = Gemma3TextConfig(
        vocab_size=103, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=6,
        layer_types=["sliding_attention", "full_attention"] * 2, query_pre_attn_scalar=16,
        max_position_embeddings=256, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    return Gemma3ForCausalLM(config).eval()


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_four_bit_keys_follow_the_dynamic_cache(tiny_model, arch: str) -> None:
    """4 bits, left padding: per layer (Gemma3: sliding and full attention, each with its own
    RoPE base), full_keys() is within 4-bit error of DynamicCache's post-RoPE keys at every
    real slot, so keys were re-rotated with the right frequencies and positions; greedy
    output matches the fp cache on these short prompts (the random Gemma3 meets a near tie at
    its 5th new token, where every quantized cache, KIVI too, flips: compare the first 4)."""
    model = _tiny_gemma3() if arch == "gemma3" else tiny_model("llama", hidden_size=64)
    ids = torch.randint(3, 100, (2, 30), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    ref = DynamicCache()
    want = _generate(model, ids, mask, ref)
    cache = SQuatPreCache(model, bits=4, group_size=G, residual_length=R, rank=4)
    got = _generate(model, ids, mask, cache)
    cache.restore_attention()
    same = 30 + (4 if arch == "gemma3" else 10)
    assert torch.equal(got[:, :same], want[:, :same])
    for i, layer in enumerate(cache.layers):
        fp = ref.layers[i].keys[..., : layer.get_seq_length(), :]
        sliding = arch == "gemma3" and model.config.layer_types[i] == "sliding_attention"
        # A sliding layer's prefill mask hides the tokens before the window (30 - 6): the cache
        # takes them as padding, never read again and kept out of the quantization statistics.
        assert layer.pad.tolist() == ([24, 24] if sliding else [5, 0])
        slot = torch.arange(fp.shape[-2])[None, :]
        real = (slot >= layer.pad[:, None]) & (slot < same)  # [B, T]: tokens both runs fed
        err = (layer.full_keys() - fp).norm(dim=-1)[real[:, None].expand(-1, fp.shape[1], -1)]
        assert layer.chunks.min() >= (2 if sliding else 5)
        assert float(err.max()) < 0.2 * float(fp.norm(dim=-1).mean())


def test_models_without_supported_rope_get_config_errors(tiny_model) -> None:
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50)).eval()
    with pytest.raises(ConfigError, match="no rotary position embedding"):
        SQuatPreCache(gpt2)
    llama = tiny_model("llama")
    llama.config.rope_parameters = {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4}
    with pytest.raises(ConfigError, match="'dynamic' is not supported"):
        SQuatPreCache(llama)
    llama.config.rope_parameters = {"rope_type": "default", "rope_theta": 1e4}
    llama.config.partial_rotary_factor = 0.5
    with pytest.raises(ConfigError, match="partial_rotary_factor"):
        SQuatPreCache(llama)
    with pytest.raises(ConfigError, match="needs the model"):
        SQuatPreCache(None, bits=2)
    layer = SQuatPreLayer(SQuatConfig(group_size=G, residual_length=R), rope=_rope())
    k = torch.randn(1, 2, 8, D)
    with pytest.raises(ConfigError, match="no position_ids"):
        layer.update(k, k)


def test_generate_inside_kv_attention_on_the_zoo(tiny_model) -> None:
    """The zoo's Llama generates with a 2-bit SQuat-pre cache inside kv_attention."""
    from burnish.eval import generate_chat
    from burnish.models import load_model
    from burnish.models.zoo import resolve_model

    model, tok = load_model(resolve_model("arith-policy"))
    prompts = ["chain 7+3*2-5", "chain 9*2"]
    with kv_attention(model):
        cache = SQuatPreCache(model, bits=2, group_size=G, residual_length=R)
        out = generate_chat(model, tok, prompts, 24, cache=cache)
    assert len(out) == 2 and all(isinstance(o[0], str) for o in out)
    assert int(cache.layers[0].chunks.min()) >= 3
