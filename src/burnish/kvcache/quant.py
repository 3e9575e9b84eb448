"""Quantization primitives for KV caches: asymmetric min-max, real bit packing, dequantization.

Pure tensor functions, no model or cache state. A group of values ``x`` is stored as integer
codes ``c = round((x - zero) / scale)`` clamped to ``[0, 2**bits - 1]`` with
``zero = min(x)`` and ``scale = (max(x) - min(x)) / (2**bits - 1)`` (the KIVI convention: the
zero point is the group minimum, kept in floating point). Scales and zero points are stored
in float16, and the codes are computed against the *rounded* float16 statistics, so
:func:`dequantize` reproduces exactly the values the quantizer chose.

Two groupings, as in KIVI:
- :func:`quantize_per_channel` (keys): one (scale, zero) per channel over ``group`` tokens;
- :func:`quantize_per_token` (values): one (scale, zero) per token over ``group`` channels.

Codes are bit-packed along the last (channel) axis into uint8: four 2-bit or two 4-bit codes
per byte, so the bytes held are the real storage cost (:func:`packed_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from burnish.errors import ConfigError

__all__ = [
    "STAT_DTYPE",
    "SUPPORTED_BITS",
    "Quantized",
    "check_bits",
    "dequantize",
    "dequantize_per_channel",
    "dequantize_per_token",
    "minmax_stats",
    "pack_codes",
    "packed_bytes",
    "quantize",
    "quantize_per_channel",
    "quantize_per_token",
    "unpack_codes",
]

SUPPORTED_BITS = (2, 4)
STAT_DTYPE = torch.float16  # dtype of scales and zero points, as in the KIVI/SQuat papers
_PACKABLE_BITS = (1, 2, 4, 8)  # widths that tile a byte; the caches accept SUPPORTED_BITS
_MIN_SCALE = 1e-4  # a constant group would give scale 0; any code then decodes to `zero`


def check_bits(bits: int) -> int:
    """Return ``bits`` if the caches support it, else raise ConfigError."""
    if bits not in SUPPORTED_BITS:
        raise ConfigError(f"kv cache bits must be 2 or 4, got {bits!r}")
    return bits


@dataclass
class Quantized:
    """Bit-packed codes with their statistics.

    Attributes:
        codes: uint8 ``[..., ceil(n * bits / 8)]``, packed along the last axis.
        scale: float16, one per group (shape depends on the grouping).
        zero: float16, same shape as ``scale``.
        bits: code width.
        n: length of the unpacked last axis.
    """

    codes: torch.Tensor
    scale: torch.Tensor
    zero: torch.Tensor
    bits: int
    n: int


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack integer codes ``[..., n]`` (values < 2**bits) into uint8 ``[..., ceil(n*bits/8)]``."""
    if bits not in _PACKABLE_BITS:
        raise ConfigError(f"cannot pack {bits}-bit codes; widths {_PACKABLE_BITS} tile a byte")
    per = 8 // bits
    n = codes.shape[-1]
    pad = (-n) % per
    c = codes.to(torch.uint8)
    if pad:
        c = torch.nn.functional.pad(c, (0, pad))
    c = c.reshape(*c.shape[:-1], -1, per)  # [..., bytes, per]
    shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=c.device)  # [per]
    return (c << shifts).sum(-1, dtype=torch.uint8)  # disjoint bit fields: sum == or


def unpack_codes(packed: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: uint8 ``[..., bytes]`` -> uint8 codes ``[..., n]``."""
    shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=packed.device)
    mask = (1 << bits) - 1
    c = (packed.unsqueeze(-1) >> shifts) & mask  # [..., bytes, per]
    return c.reshape(*packed.shape[:-1], packed.shape[-1] * (8 // bits))[..., :n]


def packed_bytes(n: int, bits: int) -> int:
    """Bytes that :func:`pack_codes` uses for ``n`` codes of ``bits`` bits."""
    per = 8 // bits
    return -(-n // per)


def minmax_stats(x: torch.Tensor, dim: int, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float16 ``(scale, zero)`` of min-max quantization of ``x`` reduced over ``dim`` (kept)."""
    xf = x.float()
    lo = xf.amin(dim, keepdim=True)
    hi = xf.amax(dim, keepdim=True)
    scale = ((hi - lo) / (2**bits - 1)).clamp_min(_MIN_SCALE)
    return scale.to(STAT_DTYPE), lo.to(STAT_DTYPE)


def quantize(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> torch.Tensor:
    """Unpacked uint8 codes of ``x`` for broadcastable float16 ``scale``/``zero``."""
    c = ((x.float() - zero.float()) / scale.float()).round_()
    return c.clamp_(0, 2**bits - 1).to(torch.uint8)


def dequantize(
    codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """``codes * scale + zero`` in ``dtype`` (computed in float32)."""
    return (codes.float() * scale.float() + zero.float()).to(dtype)


def quantize_per_channel(x: torch.Tensor, bits: int) -> Quantized:
    """Keys: ``x [..., T, d]`` with one (scale, zero) per channel over all ``T`` tokens.

    Returns codes ``[..., T, packed(d)]`` and stats ``[..., d]`` (the token axis reduced).
    Callers pass one G-token chunk at a time (``T == G``).
    """
    scale, zero = minmax_stats(x, dim=-2, bits=bits)  # [..., 1, d]
    codes = quantize(x, scale, zero, bits)
    return Quantized(
        pack_codes(codes, bits), scale.squeeze(-2), zero.squeeze(-2), bits, x.shape[-1]
    )


def quantize_per_token(x: torch.Tensor, bits: int, group: int) -> Quantized:
    """Values: ``x [..., T, d]`` with one (scale, zero) per token per ``group`` channels.

    Returns codes ``[..., T, packed(d)]`` and stats ``[..., T, d // group]``.
    """
    d = x.shape[-1]
    if d % group:
        raise ConfigError(f"value group size {group} must divide the head dimension {d}")
    xg = x.reshape(*x.shape[:-1], d // group, group)  # [..., T, d/g, g]
    scale, zero = minmax_stats(xg, dim=-1, bits=bits)  # [..., T, d/g, 1]
    codes = quantize(xg, scale, zero, bits).reshape(x.shape)
    return Quantized(pack_codes(codes, bits), scale.squeeze(-1), zero.squeeze(-1), bits, d)


def dequantize_per_channel(q: Quantized, group: int, dtype: torch.dtype) -> torch.Tensor:
    """Keys: codes ``[..., T, packed]``, stats ``[..., T/group, d]`` -> ``[..., T, d]``."""
    codes = unpack_codes(q.codes, q.bits, q.n)  # [..., T, d]
    t, d = codes.shape[-2:]
    c = codes.reshape(*codes.shape[:-2], t // group, group, d)
    out = dequantize(c, q.scale.unsqueeze(-2), q.zero.unsqueeze(-2), dtype)
    return out.reshape(codes.shape)


def dequantize_per_token(q: Quantized, dtype: torch.dtype) -> torch.Tensor:
    """Values: codes ``[..., T, packed]``, stats ``[..., T, d/group]`` -> ``[..., T, d]``."""
    codes = unpack_codes(q.codes, q.bits, q.n)  # [..., T, d]
    ngroups = q.scale.shape[-1]
    c = codes.reshape(*codes.shape[:-1], ngroups, q.n // ngroups)
    out = dequantize(c, q.scale.unsqueeze(-1), q.zero.unsqueeze(-1), dtype)
    return out.reshape(codes.shape)
