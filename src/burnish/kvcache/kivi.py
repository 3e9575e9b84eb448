"""KIVI: a 2/4-bit KV cache for ``model.generate`` (Liu et al., 2024), append-only.

Layout of one layer (per batch row and KV head):

- keys: quantized per channel in chunks of ``G`` tokens (one scale and zero point per channel
  per chunk), followed by a full-precision residual of ``R .. R + G - 1`` tokens. A chunk is
  quantized once, when the residual holds ``R + G`` tokens, so the ``R`` newest keys are
  always exact;
- values: quantized per token (one scale and zero point per ``value_group_size`` channels),
  followed by a full-precision residual of the ``R`` newest tokens; the oldest residual value
  is quantized as a new one arrives.

Every token is quantized exactly once: codes are only ever appended (never re-quantized, unlike
transformers' ``QuantizedCache``, which re-quantizes the whole cache at every flush). The
prefill is kept in full precision for its own attention and quantized right after it, its
tail staying in the residual.

Left padding: the ``burnish_kv`` attention (see :mod:`burnish.kvcache.attention`) hands the
prefill's mask to the layer; padded key slots are replaced by a valid key of the same row
before per-channel statistics are taken, and padded values by zeros, so padding never changes
the codes, scales or zero points of real tokens. Without that attention (``model`` not given
and not inside :func:`~burnish.kvcache.attention.kv_attention`) every slot counts as valid.

A cache can be cropped by at most its key residual (at least ``R`` tokens): beyond that a
key chunk would have to be re-quantized.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, CacheLayerMixin

from burnish.errors import ConfigError
from burnish.kvcache import quant
from burnish.kvcache.attention import enable_kv_attention, offer_prefill

__all__ = ["KIVICache", "KIVIConfig", "KIVILayer"]


@dataclass(frozen=True)
class KIVIConfig:
    """Options of the KIVI layout.

    Attributes:
        bits: code width, 2 or 4.
        group_size: G, tokens per key chunk (per-channel statistics over G tokens).
        residual_length: R, newest tokens kept in full precision; a multiple of G.
        value_group_size: channels per value group (per-token statistics); default min(G, d).
    """

    bits: int = 2
    group_size: int = 32
    residual_length: int = 32
    value_group_size: int | None = None

    def __post_init__(self) -> None:
        quant.check_bits(self.bits)
        g, r = self.group_size, self.residual_length
        if not isinstance(g, int) or g < 1:
            raise ConfigError(f"kv cache group_size (G) must be a positive integer, got {g!r}")
        if not isinstance(r, int) or r < 0 or r % g:
            raise ConfigError(
                f"kv cache residual_length (R={r!r}) must be a non-negative multiple of "
                f"group_size (G={g}), so that keys are quantized in whole G-token chunks"
            )
        vg = self.value_group_size
        if vg is not None and (not isinstance(vg, int) or vg < 1):
            raise ConfigError(f"kv cache value_group_size must be a positive integer, got {vg!r}")

    def value_group(self, head_dim: int) -> int:
        vg = self.value_group_size or min(self.group_size, head_dim)
        if head_dim % vg:
            raise ConfigError(f"value_group_size {vg} must divide the head dimension {head_dim}")
        return vg


class KIVILayer(CacheLayerMixin):
    """One layer of a KIVI cache. ``self.keys``/``self.values`` hold the fp residual."""

    is_sliding = False
    is_croppable = True

    def __init__(self, config: KIVIConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.key_q: quant.Quantized | None = None  # codes [B,H,Tk,packed], stats [B,H,Tk/G,d]
        self.value_q: quant.Quantized | None = None  # codes [B,H,Tv,packed], stats [B,H,Tv,d/vg]
        self.valid: torch.Tensor | None = None  # [B, T0] bool: non-padded prefill slots
        self.pending = False  # prefill held in fp, waiting for the attention hand-off

    # ---- transformers' layer API -------------------------------------------------------
    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        b, h, _, d = key_states.shape
        self.dtype, self.device, self.head_dim = key_states.dtype, key_states.device, d
        self.value_group = self.config.value_group(d)
        self.keys = key_states.new_empty(b, h, 0, d)
        self.values = value_states.new_empty(b, h, 0, value_states.shape[-1])
        nbytes = quant.packed_bytes(d, self.config.bits)
        codes = torch.empty(b, h, 0, nbytes, dtype=torch.uint8, device=self.device)
        stat = torch.empty(b, h, 0, d, dtype=quant.STAT_DTYPE, device=self.device)
        vstat = torch.empty(
            b, h, 0, d // self.value_group, dtype=quant.STAT_DTYPE, device=self.device
        )
        self.key_q = quant.Quantized(codes, stat, stat.clone(), self.config.bits, d)
        self.value_q = quant.Quantized(codes.clone(), vstat, vstat.clone(), self.config.bits, d)
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``[B, H, T, d]`` keys/values; return all keys/values the cache holds."""
        first = not self.is_initialized
        if first:
            self.lazy_initialization(key_states, value_states)
        if self.pending:  # the hand-off never came (plain sdpa): quantize without it
            self.finish_prefill()
        self.keys = torch.cat([self.keys, key_states], dim=-2)
        self.values = torch.cat([self.values, value_states], dim=-2)
        if first and key_states.shape[-2] > 0:
            # Prefill: attend in full precision, quantize once the mask (and queries) arrive.
            self.pending = True
            offer_prefill(self.layer_idx, self)
            return self.keys, self.values
        self.compress()
        return self.full_keys(), self.full_values()

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def get_seq_length(self) -> int:
        if not self.is_initialized:
            return 0
        return self.key_q.codes.shape[-2] + self.keys.shape[-2]

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self.__init__(self.config, self.layer_idx)

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the newest ``-tokens_to_remove`` tokens (only from the key residual)."""
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative count of tokens to remove")
        n = -tokens_to_remove
        if n == 0 or not self.is_initialized:
            return
        if n > self.keys.shape[-2]:
            raise ConfigError(
                f"cannot crop {n} tokens from a quantized cache: only the {self.keys.shape[-2]} "
                "newest keys are in full precision, and a quantized key chunk is never re-quantized"
            )
        self.keys = self.keys[..., : self.keys.shape[-2] - n, :]
        nv = min(n, self.values.shape[-2])
        self.values = self.values[..., : self.values.shape[-2] - nv, :]
        if n > nv:  # values are per token: dropping quantized ones is exact
            keep = self.value_q.codes.shape[-2] - (n - nv)
            q = self.value_q
            self.value_q = quant.Quantized(
                q.codes[..., :keep, :], q.scale[..., :keep, :], q.zero[..., :keep, :], q.bits, q.n
            )

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.map_batch(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.map_batch(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.map_batch(lambda t: t[indices.to(t.device)])

    def offload(self) -> None:  # quantized storage stays where it is
        return None

    def prefetch(self) -> None:
        return None

    # ---- KIVI --------------------------------------------------------------------------
    def map_batch(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Apply ``fn`` to every tensor with a leading batch axis (beams, selection)."""
        if not self.is_initialized:
            return
        self.keys, self.values = fn(self.keys), fn(self.values)
        for name in ("key_q", "value_q"):
            q = getattr(self, name)
            setattr(self, name, quant.Quantized(fn(q.codes), fn(q.scale), fn(q.zero), q.bits, q.n))
        if self.valid is not None:
            self.valid = fn(self.valid)

    def observe_prefill(self, query: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        """Hand-off from the ``burnish_kv`` attention: record padding, then quantize."""
        self.valid = prefill_validity(attention_mask, query.shape[0], query.shape[-2])
        self.finish_prefill()

    def finish_prefill(self) -> None:
        self.pending = False
        self.compress()

    def compress(self) -> None:
        """Quantize whatever left the residual windows: whole key chunks, single values."""
        g, r = self.config.group_size, self.config.residual_length
        n_chunks = max(0, (self.keys.shape[-2] - r) // g)
        if n_chunks:
            start = self.key_q.codes.shape[-2]
            x = self.keys[..., : n_chunks * g, :]
            x = fill_padded_keys(x, self.validity(start, n_chunks * g), g)
            b, h, _, d = x.shape
            q = self.quantize_keys(x.reshape(b, h, n_chunks, g, d))
            self.key_q = _append(self.key_q, q.codes.reshape(b, h, n_chunks * g, -1), q)
            self.keys = self.keys[..., n_chunks * g :, :]
        n_values = max(0, self.values.shape[-2] - r)
        if n_values:
            start = self.value_q.codes.shape[-2]
            v = self.values[..., :n_values, :]
            keep = self.validity(start, n_values)
            if keep is not None:
                v = v.masked_fill(~keep[:, None, :, None], 0)
            q = quant.quantize_per_token(v, self.config.bits, self.value_group)
            self.value_q = _append(self.value_q, q.codes, q)
            self.values = self.values[..., n_values:, :]

    def quantize_keys(self, chunks: torch.Tensor) -> quant.Quantized:
        """``[B, H, n_chunks, G, d]`` -> codes ``[B,H,n,G,packed]``, stats ``[B,H,n,d]``."""
        return quant.quantize_per_channel(chunks, self.config.bits)

    def validity(self, start: int, length: int) -> torch.Tensor | None:
        """``[B, length]`` bool for absolute positions ``start ..``, or None if all valid."""
        if self.valid is None or start >= self.valid.shape[1]:
            return None
        v = self.valid[:, start : start + length]
        if v.shape[1] < length:
            v = torch.cat([v, v.new_ones(v.shape[0], length - v.shape[1])], dim=1)
        return v

    def full_keys(self) -> torch.Tensor:
        deq = quant.dequantize_per_channel(self.key_q, self.config.group_size, self.dtype)
        return torch.cat([deq, self.keys], dim=-2)

    def full_values(self) -> torch.Tensor:
        return torch.cat([quant.dequantize_per_token(self.value_q, self.dtype), self.values], -2)

    def nbytes(self) -> dict[str, int]:
        """Exact bytes held: packed codes, scales, zero points and the fp residual."""
        if not self.is_initialized:
            return {"codes": 0, "scales": 0, "zero_points": 0, "residual": 0, "total": 0}
        qs = (self.key_q, self.value_q)
        out = {
            "codes": sum(_size(q.codes) for q in qs),
            "scales": sum(_size(q.scale) for q in qs),
            "zero_points": sum(_size(q.zero) for q in qs),
            "residual": _size(self.keys) + _size(self.values),
        }
        out["total"] = sum(out.values())
        return out


def _size(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _append(old: quant.Quantized, codes: torch.Tensor, new: quant.Quantized) -> quant.Quantized:
    return quant.Quantized(
        torch.cat([old.codes, codes], dim=-2),
        torch.cat([old.scale, new.scale], dim=-2),
        torch.cat([old.zero, new.zero], dim=-2),
        old.bits,
        old.n,
    )


def prefill_validity(
    attention_mask: torch.Tensor | None, batch: int, length: int
) -> torch.Tensor | None:
    """``[B, T]`` bool of non-padded prefill slots from a 4-D attention mask (None: all valid).

    Reads the last query row (a real token under left padding): True where it may attend.
    Works for sdpa's boolean masks and eager's additive float masks.
    """
    if attention_mask is None or attention_mask.dim() != 4:
        return None
    row = attention_mask[:, 0, -1, -length:]
    valid = row if row.dtype == torch.bool else row > torch.finfo(row.dtype).min / 2
    valid = valid.expand(batch, length)
    return None if bool(valid.all()) else valid.clone()


def fill_padded_keys(x: torch.Tensor, valid: torch.Tensor | None, group: int) -> torch.Tensor:
    """Replace padded key slots by the first valid key of the same row and chunk.

    ``x [B, H, n*G, d]``, ``valid [B, n*G]``. A chunk with no valid slot is zero-filled. Then
    per-channel min/max (and so every real token's codes) do not depend on what padding holds.
    """
    if valid is None:
        return x
    b, h, t, d = x.shape
    xc = x.reshape(b, h, t // group, group, d)
    vc = valid.reshape(b, 1, t // group, group, 1)
    first = vc.to(torch.int8).argmax(dim=-2, keepdim=True)  # [B,1,n,1,1]
    fill = xc.gather(-2, first.expand(b, h, -1, 1, d))  # [B,H,n,1,d]
    fill = fill * vc.any(dim=-2, keepdim=True)  # chunks of pure padding -> zeros
    return torch.where(vc, xc, fill).reshape(b, h, t, d)


class QuantizedKVCache(Cache):
    """A Cache of burnish quantized layers, created lazily with their layer index."""

    def __init__(self, layer_factory: Callable[[int], CacheLayerMixin], model=None) -> None:
        super().__init__(layers=[])
        self._factory = layer_factory
        if model is not None:
            enable_kv_attention(model)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        while len(self.layers) <= layer_idx:
            self.layers.append(self._factory(len(self.layers)))
        return super().update(key_states, value_states, layer_idx, *args, **kwargs)

    def nbytes(self) -> dict[str, int]:
        """Exact bytes held by all layers (codes, scales, zero points, residual, total)."""
        out = {"codes": 0, "scales": 0, "zero_points": 0, "residual": 0, "total": 0}
        for layer in self.layers:
            for k, v in layer.nbytes().items():
                out[k] = out.get(k, 0) + v
        return out


class KIVICache(QuantizedKVCache):
    """KIVI KV cache: ``model.generate(..., cache=KIVICache(model, bits=2))``.

    Args:
        model: if given, switched to the ``burnish_kv`` attention (sdpa + prefill hand-off) so
            that left padding is excluded from the statistics; otherwise all slots count.
        bits, group_size, residual_length, value_group_size: see :class:`KIVIConfig`.
    """

    def __init__(
        self,
        model: PreTrainedModel | None = None,
        bits: int = 2,
        group_size: int = 32,
        residual_length: int = 32,
        value_group_size: int | None = None,
    ) -> None:
        self.config = KIVIConfig(bits, group_size, residual_length, value_group_size)
        super().__init__(lambda i: KIVILayer(self.config, i), model)
