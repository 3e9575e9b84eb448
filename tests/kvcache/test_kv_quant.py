"""Quantization primitives and SQuat's closed-form block update, without a model."""

from __future__ import annotations

import pytest
import torch

from burnish.errors import ConfigError
from burnish.kvcache import quant
from burnish.kvcache.squat import (
    block_ranges,
    obs_coefficients,
    query_subspace,
    squat_quantize_keys,
    subspace_weights,
    weight_matrix,
)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("n", [1, 7, 32])
def test_pack_roundtrip_and_size(bits: int, n: int) -> None:
    codes = torch.randint(0, 2**bits, (3, 5, n), dtype=torch.uint8)
    packed = quant.pack_codes(codes, bits)
    assert packed.dtype == torch.uint8
    assert packed.shape[-1] == quant.packed_bytes(n, bits) == -(-n * bits // 8)
    assert torch.equal(quant.unpack_codes(packed, bits, n), codes)


def _dequant_chunk(q: quant.Quantized) -> torch.Tensor:
    """Dequantize one chunk per leading index (stats ``[..., d]``) via the flat-layout helper."""
    stats = quant.Quantized(q.codes, q.scale.unsqueeze(-2), q.zero.unsqueeze(-2), q.bits, q.n)
    return quant.dequantize_per_channel(stats, q.codes.shape[-2], torch.float32)


def test_minmax_quantization_error_bound_and_extremes() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 16) * 3 + 1
    for bits in (2, 4):
        q = quant.quantize_per_channel(x, bits)
        assert q.scale.shape == (2, 3, 16) and q.scale.dtype == torch.float16
        deq = _dequant_chunk(q)
        step = q.scale.float().unsqueeze(-2)
        assert ((deq - x).abs() <= step / 2 + 2e-3 * x.abs().amax()).all()
        codes = quant.unpack_codes(q.codes, bits, 16)
        assert codes.min() == 0 and codes.max() == 2**bits - 1  # the range is used fully
    v = quant.quantize_per_token(x, 2, group=8)
    assert v.scale.shape == (2, 3, 32, 2)
    err = (quant.dequantize_per_token(v, torch.float32) - x).abs()
    assert err.max() <= v.scale.float().max() / 2 + 1e-2
    with pytest.raises(ConfigError, match="divide"):
        quant.quantize_per_token(x, 2, group=5)


def test_groups_are_independent() -> None:
    """Per-channel stats of one chunk ignore other chunks; per-token stats ignore other tokens."""
    x = torch.randn(1, 1, 16, 8)
    y = x.clone()
    y[..., 8:, :] *= 100  # second chunk, other tokens
    qx = quant.quantize_per_channel(x.reshape(1, 1, 2, 8, 8), 2)
    qy = quant.quantize_per_channel(y.reshape(1, 1, 2, 8, 8), 2)
    assert torch.equal(qx.scale[..., 0, :], qy.scale[..., 0, :])
    assert torch.equal(qx.codes[..., 0, :, :], qy.codes[..., 0, :, :])
    vx, vy = quant.quantize_per_token(x, 4, 8), quant.quantize_per_token(y, 4, 8)
    assert torch.equal(vx.codes[..., :8, :], vy.codes[..., :8, :])


def test_bits_validation() -> None:
    for bad in (1, 3, 8, 16):
        with pytest.raises(ConfigError, match="2 or 4"):
            quant.check_bits(bad)


def _spd_weight(d: int = 16, r: int = 4, lam: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    basis = torch.randn(r, d)
    queries = torch.randn(200, r) @ basis * 2 + 0.1 * torch.randn(200, d)
    q_hat = query_subspace(queries, r)
    return q_hat, weight_matrix(q_hat, lam)


def test_query_subspace_and_weight() -> None:
    q_hat, a = _spd_weight()
    assert q_hat.shape == (4, 16)
    assert torch.allclose(a, a.T) and torch.linalg.eigvalsh(a).min() >= 1 - 1e-3
    # Q_hat^T Q_hat is the top-r part of the second moment of the queries (sqrt(N) normalised)
    torch.manual_seed(1)
    basis = torch.randn(4, 16)
    queries = torch.randn(200, 4) @ basis * 2 + 0.1 * torch.randn(200, 16)
    moment = queries.T @ queries / 200
    top = torch.linalg.eigvalsh(moment)[-4:]
    assert torch.allclose(torch.linalg.eigvalsh(q_hat.T @ q_hat)[-4:], top, rtol=1e-4)


def test_closed_form_equals_brute_force_least_squares() -> None:
    """-C e_F is argmin_{e_R} e^T A e given e_F, solved by lstsq on ||L^T e|| (A = L L^T).

    Tolerance: 1e-4 absolute on errors of size ~1 in float32.
    """
    _, a = _spd_weight()
    a64 = a.double()
    chol = torch.linalg.cholesky(a64)  # A = L L^T, so e^T A e = ||L^T e||^2
    blocks = block_ranges(16, 4)
    coefs = obs_coefficients(a, blocks)
    torch.manual_seed(2)
    for (_, e), c in zip(blocks[:-1], coefs, strict=True):
        e_f = torch.randn(e, dtype=torch.float64)
        lt = chol.T
        sol = torch.linalg.lstsq(lt[:, e:], -(lt[:, :e] @ e_f)).solution
        assert torch.allclose(-(c.double() @ e_f), sol, atol=1e-4)
        # and it is a minimum: perturbing it only increases the cost
        full = torch.cat([e_f, sol])
        cost = full @ a64 @ full
        bumped = full.clone()
        bumped[e:] += 1e-2 * torch.randn(16 - e, dtype=torch.float64)
        assert bumped @ a64 @ bumped > cost


def test_block_update_targets_match_brute_force() -> None:
    """squat_quantize_keys quantizes each block from the brute-force optimal shifted target."""
    q_hat, a = _spd_weight()
    blocks = block_ranges(16, 4)
    torch.manual_seed(3)
    x = torch.randn(32, 16)
    q, khat = squat_quantize_keys(x, q_hat, subspace_weights(q_hat, 5.0, blocks), blocks, bits=2)
    lt = torch.linalg.cholesky(a.double()).T
    codes = quant.unpack_codes(q.codes, 2, 16)
    target = x.double().clone()
    for s, e in blocks:
        scale, zero = quant.minmax_stats(target[:, s:e], dim=-2, bits=2)
        assert torch.allclose(scale.squeeze(0).float(), q.scale[s:e].float(), atol=2e-3)
        ref = quant.quantize(target[:, s:e], scale, zero, 2)
        assert (ref != codes[:, s:e]).float().mean() < 0.02  # ties at rounding edges only
        err_f = khat[:, :e].double() - x[:, :e].double()  # [G, e]
        if e < 16:
            rhs = -(lt[:, :e] @ err_f.T)  # [d, G]
            shift = torch.linalg.lstsq(lt[:, e:], rhs).solution.T  # [G, d - e]
            target[:, e:] = x[:, e:].double() + shift


def test_error_projection_onto_queries_is_smaller_than_kivi() -> None:
    q_hat, _ = _spd_weight(d=32, r=4, lam=50.0)
    blocks = block_ranges(32, 8)
    torch.manual_seed(4)
    keys = torch.randn(4, 32, 32)  # 4 chunks of G = 32 tokens
    weights = subspace_weights(q_hat, 50.0, blocks)
    _, squat_hat = squat_quantize_keys(keys, q_hat, weights, blocks, bits=2)
    kivi = quant.quantize_per_channel(keys, 2)
    kivi_hat = _dequant_chunk(kivi)
    proj_squat = ((squat_hat - keys) @ q_hat.T).norm()
    proj_kivi = ((kivi_hat - keys) @ q_hat.T).norm()
    assert proj_squat < 0.8 * proj_kivi
    # no correction (coefs None) is exactly KIVI's per-channel quantizer
    plain, _ = squat_quantize_keys(keys, q_hat, None, blocks, bits=2)
    assert torch.equal(plain.codes, kivi.codes) and torch.equal(plain.scale, kivi.scale)
