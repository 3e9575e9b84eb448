"""What the caches hold: nbytes() against every tensor storage reachable from the cache, the
2-bit size at 2048 tokens, and SQuat's Woodbury-form correction against the explicit solve."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from burnish.kvcache import (
    KIVICache,
    KIVIConfig,
    KIVILayer,
    SQuatCache,
    SQuatConfig,
    SQuatLayer,
    quant,
)
from burnish.kvcache.squat import (
    block_ranges,
    obs_coefficients,
    squat_quantize_keys,
    subspace_weights,
    weight_matrix,
)


def held_bytes(obj: object) -> int:
    """Bytes of every distinct tensor storage reachable from ``obj``: through the ``__dict__``
    of caches and cache layers, lists, tuples, dicts and dataclasses (e.g. quant.Quantized).
    Storages are deduplicated by data pointer, and a view counts its whole storage."""
    storages: dict[tuple[str, int], int] = {}
    seen: set[int] = set()

    def walk(x: object) -> None:
        if id(x) in seen:
            return
        seen.add(id(x))
        if isinstance(x, torch.Tensor):
            s = x.untyped_storage()
            storages[(str(x.device), s.data_ptr())] = s.nbytes()
        elif isinstance(x, (list, tuple)):
            for item in x:
                walk(item)
        elif isinstance(x, dict):
            for item in x.values():
                walk(item)
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            for f in dataclasses.fields(x):
                walk(getattr(x, f.name))
        elif isinstance(x, (Cache, CacheLayerMixin)):
            walk(vars(x))

    walk(obj)
    return sum(storages.values())


@pytest.mark.parametrize("cache_cls", [KIVICache, SQuatCache])
def test_nbytes_counts_every_tensor_the_cache_holds(tiny_model, cache_cls) -> None:
    """Left-padded prefill + decode, then a crop and a beam reorder: nbytes()['total'] equals
    the bytes of all storages reachable from the cache (nothing left out, no hidden views)."""
    model = tiny_model("llama", hidden_size=64, num_heads=4, num_kv_heads=2)  # d = 16
    ids = torch.randint(3, 100, (3, 22), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :5], mask[2, :3] = 0, 0  # left padding
    cache = cache_cls(model, bits=2, group_size=4, residual_length=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.generate(
            ids, attention_mask=mask, max_new_tokens=9, min_new_tokens=9, do_sample=False,
            cache=cache, pad_token_id=0,
        )  # fmt: skip
    assert cache.layers[0].chunks.tolist() == [6, 5, 5]  # several chunks, rows at own frontiers
    assert cache.nbytes()["total"] == held_bytes(cache)
    cache.crop(-2)
    cache.reorder_cache(torch.tensor([2, 0, 0]))
    assert cache.nbytes()["total"] == held_bytes(cache)


@pytest.mark.parametrize(("layer_cls", "limit"), [(KIVILayer, 0.21), (SQuatLayer, 0.25)])
def test_two_bit_size_at_2048_tokens_head_dim_128(layer_cls, limit) -> None:
    """G = R = 32 (the defaults), batch 1, 2 KV heads of d = 128, fp16 keys/values, a
    2040-token prefill then 8 decode steps (2048 tokens): all the layer holds is at most
    ``limit`` of the fp16 cache (KIVI ~0.20; SQuat adds Q_hat and its r x r weights, ~0.21)."""
    config = (SQuatConfig if layer_cls is SQuatLayer else KIVIConfig)(bits=2)
    layer = layer_cls(config)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 2040, 128, generator=gen).half()
    layer.update(x, x)
    layer.observe_prefill(torch.randn(1, 4, 2040, 128, generator=gen).half(), None)
    for _ in range(8):
        y = torch.randn(1, 2, 1, 128, generator=gen).half()
        layer.update(y, y)
    assert layer.get_seq_length() == 2048
    fp16 = 2 * (2 * 2048 * 128) * 2  # keys + values, 2 heads, 2 bytes each
    assert layer.nbytes()["total"] == held_bytes(layer)
    assert held_bytes(layer) <= limit * fp16


def _random_subspace(r: int, d: int, deficient: int, seed: int) -> torch.Tensor:
    """``[2, 3, r, d]`` query bases with a few dominant directions; ``deficient`` zero rows
    (what query_subspace gives when there are fewer queries than r)."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(2, 3, r, d, generator=gen) * torch.linspace(3, 0.2, r)[:, None]
    if deficient:
        q[..., r - deficient :, :] = 0
    return q


@pytest.mark.parametrize("lam", [0.1, 5.0, 100.0])
@pytest.mark.parametrize(("d", "block", "deficient"), [(16, 4, 0), (20, 6, 3), (32, 8, 0)])
def test_woodbury_shift_equals_explicit_schur_solve(lam, d, block, deficient) -> None:
    """For every block boundary, ``((err Q_F^T) W_j) Q_R`` (fp32) equals ``err C_j^T`` with
    ``C_j = A_RR^{-1} A_RF`` from the explicit solve, for full-rank and rank-deficient Q_hat,
    a short last block, and small to large lambda.

    Tolerances, relative to the largest shift: against the explicit solve in fp64 (the exact
    answer) the Woodbury form is within 5e-5 (measured: 3e-7 .. 3e-5), the explicit fp32
    solve the cache used before within 1.1e-3 (its error grows with cond(A) ~ 1 + lambda
    |Q_hat|^2, up to 4e4 here); so new and old agree within 2e-3.
    """
    q_hat = _random_subspace(6, d, deficient, seed=d + block)
    blocks = block_ranges(d, block)
    weights = subspace_weights(q_hat, lam, blocks)  # [2, 3, nb-1, r, r]
    assert weights.shape == (2, 3, len(blocks) - 1, 6, 6)
    coefs = obs_coefficients(weight_matrix(q_hat, lam), blocks)  # explicit, fp32
    a64 = torch.eye(d, dtype=torch.float64) + lam * q_hat.double().mT @ q_hat.double()
    err = torch.randn(2, 3, 32, d, generator=torch.Generator().manual_seed(7))  # [.., G, d]
    for j, ((_, e), c) in enumerate(zip(blocks[:-1], coefs, strict=True)):
        c64 = torch.linalg.solve(a64[..., e:, e:], a64[..., e:, :e])  # [2, 3, d-e, e]
        exact = err[..., :e].double() @ c64.mT  # [2, 3, G, d-e]
        new = (err[..., :e] @ q_hat[..., :e].mT @ weights[..., j, :, :]) @ q_hat[..., e:]
        old = err[..., :e] @ c.mT
        scale = float(exact.abs().max())
        assert float((new.double() - exact).abs().max()) <= 5e-5 * scale
        assert float((new - old).abs().max()) <= 2e-3 * scale


def _explicit_squat(x: torch.Tensor, coefs: list[torch.Tensor], blocks, bits: int) -> tuple:
    """The block update written with the explicit ``C_j`` (the pre-Woodbury algorithm)."""
    target, khat = x.clone(), torch.empty_like(x)
    codes = torch.empty(x.shape, dtype=torch.uint8)
    scales = []
    for j, (s, e) in enumerate(blocks):
        scale, zero = quant.minmax_stats(target[..., s:e], dim=-2, bits=bits)
        codes[..., s:e] = quant.quantize(target[..., s:e], scale, zero, bits)
        khat[..., s:e] = quant.dequantize(codes[..., s:e], scale, zero, torch.float32)
        scales.append(scale)
        if j < len(blocks) - 1:
            target[..., e:] = x[..., e:] - (khat[..., :e] - x[..., :e]) @ coefs[j].mT
    return codes, torch.cat(scales, -1).squeeze(-2), khat


@pytest.mark.parametrize("bits", [2, 4])
def test_squat_quantize_keys_matches_explicit_update(bits) -> None:
    """Batched chunks ``[B, H, n, G, d]``: the Woodbury update gives the codes, scales and
    dequantized keys of the explicit-``C_j`` update. The two shifts differ in the last float
    bits, so a target sitting exactly on a rounding edge can get the other code; at 2 bits
    that moves the later blocks' ranges of its chunk (measured here: 0.1% of codes, 0.9% of
    scales; at 4 bits nothing differed)."""
    d, blocks = 32, block_ranges(32, 4)
    q_hat = _random_subspace(8, d, deficient=0, seed=3)  # [2, 3, r, d]
    x = torch.randn(2, 3, 4, 32, d, generator=torch.Generator().manual_seed(4)) * 2
    weights = subspace_weights(q_hat, 2.0, blocks)
    q, khat = squat_quantize_keys(
        x, q_hat.unsqueeze(2), weights.unsqueeze(2), blocks, bits
    )  # fmt: skip
    coefs = [c.unsqueeze(2) for c in obs_coefficients(weight_matrix(q_hat, 2.0), blocks)]
    ref_codes, ref_scale, ref_khat = _explicit_squat(x, coefs, blocks, bits)
    codes = quant.unpack_codes(q.codes, bits, d)
    assert (codes != ref_codes).float().mean() <= 2e-3
    assert (q.scale != ref_scale).float().mean() <= 0.02
    assert (khat - ref_khat).abs().mean() <= 5e-3 * x.abs().mean()
