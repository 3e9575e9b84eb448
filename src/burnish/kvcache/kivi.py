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

Batch invariance (left padding). A row's codes, scales and zero points, and so its greedy
output, are the same alone as in a left-padded batch. The ``burnish_kv`` attention (see
:mod:`burnish.kvcache.attention`) hands the prefill's mask to the layer, which records each
row's left padding ``p_i``. Key chunks are then aligned to each row's *own* tokens, not to
absolute slots: the quantized keys are stored in "own" coordinates (row ``i``'s token ``u``,
at slot ``p_i + u``, is stored at index ``u``), so chunk ``c`` of a row holds its own tokens
``cG .. cG + G - 1``, exactly the chunk it would hold alone, and padding never enters a key
chunk. A row quantizes its next chunk when *its* residual reaches ``R + G`` tokens (the
condition it would meet alone), so rows reach chunk boundaries at different decode steps; the
rows that are due are selected (one gather, no per-row Python loop), quantized together and
their chunks written in place. The per-row counts (``pad``, ``chunks``) are tiny CPU tensors,
so deciding what is due never waits on the device.

Shapes: ``key_q`` codes ``[B, H, C*G, packed]`` and stats ``[B, H, C, d]`` (``C`` = the most
chunks any row has; a row with fewer has zeros past its own ``chunks[i]``); the fp key residual
``keys [B, H, T - key_start, d]`` is in slot coordinates and starts at the smallest per-row
frontier ``key_start = min_i(p_i + G * chunks[i])``. Every row's frontier lies within the
last ``R + G`` slots, so the residual stays under ``R + G`` tokens, and a row's keys between
``key_start`` and its own frontier are held twice (fp and codes). :meth:`KIVILayer.full_keys`
takes, per slot, the codes below the row's frontier and the residual above it (one gather; a
plain concat when all rows share one frontier, as in an unpadded batch). Values are per token,
so padding cannot move a real token's statistics; they stay in slot coordinates with one
frontier, padded values quantized as zeros.

Why this design, and not chunk boundaries at slots ``(p_i mod G) + kG`` (which also keeps
padding and real tokens apart): own coordinates put chunk ``c`` of every row at the same index
of one uniform ``[B, H, C, ...]`` tensor, so dequantization stays one batched call, a row's
stored codes and statistics are literally the tensors it would hold alone (what the tests
compare), and no key padding is ever quantized. The price: a heavily padded row leaves zeros in
the chunk slots past its own frontier (about what its padding cost before). Other padding
shapes (holes, right padding) fall back to replacing invalid slots by a valid key of the same
row and chunk, as before; only left padding is batch-invariant. Without the attention
hand-off (``model`` not given and not inside :func:`~burnish.kvcache.attention.kv_attention`)
every slot counts as valid.

A cache can be cropped by at most what every row still holds in full precision (at least
``R`` tokens): beyond that a key chunk would have to be re-quantized.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import ClassVar, TypeVar

import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.cache_utils import Cache, CacheLayerMixin, DummyLayer

from burnish.errors import ConfigError
from burnish.kvcache import quant
from burnish.kvcache.attention import disable_kv_attention, enable_kv_attention, offer_prefill

__all__ = ["KIVICache", "KIVIConfig", "KIVILayer", "QuantizedKVCache", "make_config"]


@dataclass(frozen=True)
class KIVIConfig:
    """Options of the KIVI layout (the one place their defaults are defined).

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
        """Channels per value group for ``head_dim`` (ConfigError if it does not divide it)."""
        vg = self.value_group_size or min(self.group_size, head_dim)
        if head_dim % vg:
            raise ConfigError(f"value_group_size {vg} must divide the head dimension {head_dim}")
        return vg

    def check_head_dim(self, head_dim: int) -> None:
        """Raise ConfigError if these options cannot quantize heads of size ``head_dim``."""
        self.value_group(head_dim)


ConfigT = TypeVar("ConfigT", bound=KIVIConfig)


def make_config(
    config_cls: type[ConfigT], config: ConfigT | None, options: dict[str, object], owner: str
) -> ConfigT:
    """``config`` itself, or ``config_cls(**options)``; ConfigError naming an unknown option.

    ``owner`` names the cache in messages (e.g. ``"KIVICache"``).
    """
    if config is not None:
        if options:
            raise ConfigError(f"{owner}: pass either config= or options, not both")
        if not isinstance(config, config_cls):
            raise ConfigError(f"{owner} takes a {config_cls.__name__}, got {type(config).__name__}")
        return config
    names = [f.name for f in fields(config_cls)]
    unknown = [k for k in options if k not in names]
    if unknown:
        raise ConfigError(
            f"{owner} has no option {unknown[0]!r}; its options are {', '.join(names)}"
        )
    return config_cls(**options)


class KIVILayer(CacheLayerMixin):
    """One layer of a KIVI cache. ``self.keys``/``self.values`` hold the fp residuals."""

    is_sliding = False
    is_croppable = True

    def __init__(self, config: KIVIConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.key_q: quant.Quantized | None = None  # own coords: codes [B,H,C*G,p], stats [B,H,C,d]
        self.value_q: quant.Quantized | None = None  # codes [B,H,Tv,packed], stats [B,H,Tv,d/vg]
        self.key_start = 0  # slot of self.keys[..., 0, :]
        self.pad: torch.Tensor | None = None  # [B] int64 on CPU: left-padding slots per row
        self.chunks: torch.Tensor | None = None  # [B] int64 on CPU: key chunks quantized per row
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
        self.key_start = 0
        self.pad = torch.zeros(b, dtype=torch.int64)
        self.chunks = torch.zeros(b, dtype=torch.int64)
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
        return self.key_start + self.keys.shape[-2]

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self.__init__(self.config, self.layer_idx)

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the newest ``-tokens_to_remove`` tokens (only what every row holds in fp)."""
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative count of tokens to remove")
        n = -tokens_to_remove
        if n == 0 or not self.is_initialized:
            return
        exact = self.get_seq_length() - int(self.key_frontier().max())
        if n > exact:
            raise ConfigError(
                f"cannot crop {n} tokens from a quantized cache: only the {exact} newest keys "
                "of every row are in full precision, and a quantized key chunk is never "
                "re-quantized"
            )
        self.keys = self.keys[..., : self.keys.shape[-2] - n, :].clone()
        nv = min(n, self.values.shape[-2])
        self.values = self.values[..., : self.values.shape[-2] - nv, :].clone()
        if n > nv:  # values are per token: dropping quantized ones is exact
            keep = self.value_q.codes.shape[-2] - (n - nv)
            q = self.value_q
            self.value_q = quant.Quantized(
                q.codes[..., :keep, :].clone(),
                q.scale[..., :keep, :].clone(),
                q.zero[..., :keep, :].clone(),
                q.bits,
                q.n,
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
        self.pad, self.chunks = fn(self.pad), fn(self.chunks)
        if self.valid is not None:
            self.valid = fn(self.valid)

    # ---- merging two caches' rows (continuous batching) ---------------------------------
    def left_pad_to(self, length: int, residual_values: int, validity_width: int) -> None:
        """Shift this layer to ``length`` slots by adding padding slots on the left.

        The added slots are padding of every row (``pad`` grows; they are never attended and
        never enter a quantization statistic). Quantized key chunks are in each row's own
        coordinates and do not move. Afterwards the fp value residual holds
        ``residual_values`` slots (zero-filled padding where it held fewer: only a layer with
        no quantized value yet can hold fewer) and the prefill validity mask is
        ``validity_width`` wide (slots past it are valid)."""
        shift = length - self.get_seq_length()
        held = self.values.shape[-2]
        if shift < 0 or residual_values < held or residual_values - held > shift:
            raise ConfigError(
                f"cannot left-pad a {self.get_seq_length()}-slot layer holding {held} fp "
                f"values to {length} slots with {residual_values} fp values"
            )
        b, h, _, dv = self.values.shape
        extra = residual_values - held
        self.values = torch.cat([self.values.new_zeros(b, h, extra, dv), self.values], -2)
        self.value_q = _left_pad_tokens(self.value_q, shift - extra)
        self.pad = self.pad + shift
        self.key_start += shift
        valid = self.valid
        if valid is None:
            valid = torch.ones(b, 0, dtype=torch.bool, device=self.device)
        valid = torch.cat([valid.new_zeros(b, shift), valid], 1)
        width = max(validity_width, valid.shape[1])
        self.valid = torch.cat([valid, valid.new_ones(b, width - valid.shape[1])], 1)

    def lower_key_start(self, start: int) -> None:
        """Let the fp key residual begin at slot ``start`` (<= ``key_start``; the slots added
        lie below every row's frontier and are never read)."""
        n = self.key_start - start
        if n < 0:
            raise ConfigError(f"key residual starts at {self.key_start}, cannot move to {start}")
        b, h, _, d = self.keys.shape
        self.keys = torch.cat([self.keys.new_zeros(b, h, n, d), self.keys], -2)
        self.key_start = start

    def trim_left(self, n: int) -> None:
        """Drop the ``n`` oldest slots, padding in every row (after rows left the batch)."""
        if n <= 0:
            return
        if n > int(self.pad.min()):
            raise ConfigError(f"cannot drop {n} slots: some row has only {int(self.pad.min())}")
        self.pad = self.pad - n
        start = self.key_start - n
        if start < 0:  # the residual's first slots were padding too
            self.keys = self.keys[..., -start:, :].clone()
            start = 0
        self.key_start = start
        coded = self.value_q.codes.shape[-2]
        q, k = self.value_q, min(n, coded)
        self.value_q = quant.Quantized(
            q.codes[..., k:, :].clone(), q.scale[..., k:, :].clone(), q.zero[..., k:, :].clone(),
            q.bits, q.n,
        )  # fmt: skip
        if n > coded:
            self.values = self.values[..., n - coded :, :].clone()
        if self.valid is not None:
            self.valid = self.valid[:, n:].clone()

    def cat_batch(self, other: KIVILayer) -> None:
        """Append ``other``'s rows after this layer's; both must already share length, key
        residual start, value split and validity width (:meth:`QuantizedKVCache.absorb`)."""
        n_chunks = max(self.key_q.scale.shape[2], other.key_q.scale.shape[2])
        self.key_q = _grow_chunks(self.key_q, n_chunks, self.config.group_size)
        other.key_q = _grow_chunks(other.key_q, n_chunks, other.config.group_size)
        theirs: list[torch.Tensor] = []
        other.map_batch(lambda t: theirs.append(t) or t)
        rest = iter(theirs)
        self.map_batch(lambda t: torch.cat([t, next(rest).to(t.device)]))

    def observe_prefill(self, query: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        """Hand-off from the ``burnish_kv`` attention: record padding, then quantize."""
        self.record_padding(prefill_validity(attention_mask, query.shape[0], query.shape[-2]))
        self.finish_prefill()

    def record_padding(self, valid: torch.Tensor | None) -> None:
        """Keep the prefill's ``[B, T0]`` validity and each row's left padding (leading
        invalid slots; a row with no valid slot counts as all padding)."""
        self.valid = valid
        if valid is not None:
            first = valid.to(torch.int8).argmax(dim=1)  # [B] first valid slot
            self.pad = torch.where(valid.any(dim=1), first, valid.shape[1]).cpu()

    def finish_prefill(self) -> None:
        self.pending = False
        self.compress()

    def compress(self) -> None:
        """Quantize whatever left the residual windows: whole key chunks, single values."""
        self.compress_keys()
        self.compress_values()

    def key_frontier(self) -> torch.Tensor:
        """``[B]`` (CPU) slot where each row's fp keys begin: ``pad + G * chunks``."""
        return self.pad + self.config.group_size * self.chunks

    def compress_keys(self) -> None:
        """Quantize each row's due chunks: a row's chunk is due when its own residual (its
        tokens past its frontier) reaches ``R + G``, as it would alone."""
        g, r = self.config.group_size, self.config.residual_length
        own_len = self.get_seq_length() - self.pad  # [B] tokens of each row, padding excluded
        target = torch.div(own_len - r, g, rounding_mode="floor").clamp(min=0)  # [B] chunks
        due = target - self.chunks  # [B]; negative after a crop: nothing to do
        k = int(due.max())
        if k > 0:
            rows = (due > 0).nonzero().squeeze(1)  # [B'] rows with at least one due chunk
            self.store_key_chunks(rows, due[rows], k)
            self.chunks = torch.maximum(self.chunks, target)
        start = int(self.key_frontier().min())
        if start > self.key_start:  # every row has quantized past the residual's first slots
            self.keys = self.keys[..., start - self.key_start :, :].clone()
            self.key_start = start

    def store_key_chunks(self, rows: torch.Tensor, due: torch.Tensor, k: int) -> None:
        """Quantize chunks ``chunks[i] .. chunks[i] + due[i] - 1`` of each row ``i`` in ``rows``.

        ``rows``, ``due`` ``[B']`` (CPU); ``k = max(due)``. All ``k`` chunks are gathered and
        quantized for every selected row (one batched call); only the due ones are stored, so
        each stored code comes from one quantization. The extra chunks of rows with fewer due
        are computed and dropped: that happens at the prefill only (rows of different prompt
        lengths); in decode every due row has exactly one chunk due.
        """
        g = self.config.group_size
        b2, (_, h, tres, d) = rows.numel(), self.keys.shape
        first = self.chunks[rows]  # [B'] first due chunk of each selected row
        slots = (self.pad[rows] + g * first)[:, None] + torch.arange(k * g)  # [B', kG]
        idx = (slots - self.key_start).clamp(0, tres - 1).to(self.device)
        rows_dev = rows.to(self.device)
        x = self.keys.index_select(0, rows_dev)  # [B', H, Tres, d]
        x = x.gather(2, idx[:, None, :, None].expand(b2, h, k * g, d))  # [B', H, kG, d]
        x = self.prepare_chunk_keys(x, slots, rows)
        x = fill_padded_keys(x, self.slot_validity(slots, rows), g)
        q = self.quantize_keys(x.reshape(b2, h, k, g, d), rows)  # codes [B',H,k,G,p]
        pair_r, pair_j = (torch.arange(k)[None, :] < due[:, None]).nonzero(as_tuple=True)
        dst_b, dst_c = rows[pair_r], first[pair_r] + pair_j  # [pairs]: (row, chunk) to write
        self.key_q = _grow_chunks(self.key_q, int((first + due).max()), g)
        codes = self.key_q.codes.view(*self.key_q.scale.shape[:3], g, -1)  # [B, H, C, G, p]
        src = (pair_r.to(self.device), slice(None), pair_j.to(self.device))
        dst = (dst_b.to(self.device), slice(None), dst_c.to(self.device))
        codes[dst] = q.codes[src]  # [pairs, H, G, p]
        self.key_q.scale[dst] = q.scale[src]  # [pairs, H, d]
        self.key_q.zero[dst] = q.zero[src]

    def compress_values(self) -> None:
        """Quantize the values that left the ``R``-token window (one frontier for all rows)."""
        n_values = self.values.shape[-2] - self.config.residual_length
        if n_values <= 0:
            return
        start = self.value_q.codes.shape[-2]
        v = self.values[..., :n_values, :]
        slots = torch.arange(start, start + n_values)[None, :].expand(v.shape[0], -1)
        keep = self.slot_validity(slots)
        if keep is not None:
            v = v.masked_fill(~keep[:, None, :, None], 0)
        q = quant.quantize_per_token(v, self.config.bits, self.value_group)
        self.value_q = _append(self.value_q, q.codes, q)
        self.values = self.values[..., n_values:, :].clone()

    def prepare_chunk_keys(
        self, keys: torch.Tensor, slots: torch.Tensor, rows: torch.Tensor
    ) -> torch.Tensor:
        """The keys to quantize for residual keys ``[B', H, kG, d]`` at ``slots`` ``[B', kG]``
        (CPU) of batch rows ``rows``: the keys as given (the pre-RoPE variant un-rotates them)."""
        return keys

    def stored_keys(self) -> torch.Tensor:
        """Dequantized key chunks ``[B, H, C*G, d]`` in own coordinates, in the cache dtype."""
        return quant.dequantize_per_channel(self.key_q, self.config.group_size, self.dtype)

    def quantize_keys(self, chunks: torch.Tensor, rows: torch.Tensor) -> quant.Quantized:
        """``[B', H, n, G, d]`` chunks of batch rows ``rows`` ``[B']`` -> codes
        ``[B', H, n, G, packed]``, stats ``[B', H, n, d]``."""
        return quant.quantize_per_channel(chunks, self.config.bits)

    def slot_validity(
        self, slots: torch.Tensor, rows: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """``[B', n]`` bool (on the device) for slots ``[B', n]`` (CPU) of ``rows`` (default
        all), or None if all are valid. Slots past the prefill are always valid."""
        if self.valid is None or int(slots.min()) >= self.valid.shape[1]:
            return None
        valid = self.valid if rows is None else self.valid[rows.to(self.device)]
        s = slots.to(self.device)
        return valid.gather(1, s.clamp(max=valid.shape[1] - 1)) | (s >= valid.shape[1])

    def full_keys(self) -> torch.Tensor:
        """All keys ``[B, H, T, d]`` in slot coordinates: codes below each row's frontier,
        the fp residual from it. Padded slots hold some stored key of the row (masked anyway)."""
        deq = self.stored_keys()
        stored = deq.shape[-2]  # C*G, own coordinates
        if stored == self.key_start and not bool(self.pad.any()):  # one frontier, no padding
            return torch.cat([deq, self.keys], dim=-2)
        b, h, tres, d = self.keys.shape
        t = self.key_start + tres
        slots = torch.arange(t, device=self.device)[None, :]  # [1, T]
        own = slots - self.pad.to(self.device)[:, None]  # [B, T] each row's own token index
        below = own < (self.config.group_size * self.chunks).to(self.device)[:, None]
        idx = torch.where(below, own.clamp(min=0), stored + slots - self.key_start)
        idx = idx.clamp(0, stored + tres - 1)  # padded slots of a row with no chunk yet
        src = torch.cat([deq, self.keys], dim=-2)  # [B, H, C*G + Tres, d]
        return src.gather(2, idx[:, None, :, None].expand(b, h, t, d))

    def full_values(self) -> torch.Tensor:
        return torch.cat([quant.dequantize_per_token(self.value_q, self.dtype), self.values], -2)

    def nbytes(self) -> dict[str, int]:
        """Exact bytes of every tensor the layer holds.

        ``codes``/``scales``/``zero_points`` of keys and values (including zero-filled chunk
        slots of rows behind the batch's furthest frontier), ``residual`` (fp keys and values),
        ``bookkeeping`` (per-row counts and the prefill's validity mask) and ``total``.
        """
        names = ("codes", "scales", "zero_points", "residual", "bookkeeping")
        if not self.is_initialized:
            return dict.fromkeys((*names, "total"), 0)
        qs = (self.key_q, self.value_q)
        out = {
            "codes": sum(_size(q.codes) for q in qs),
            "scales": sum(_size(q.scale) for q in qs),
            "zero_points": sum(_size(q.zero) for q in qs),
            "residual": _size(self.keys) + _size(self.values),
            "bookkeeping": _size(self.pad) + _size(self.chunks) + _size(self.valid),
        }
        out["total"] = sum(out.values())
        return out


def _width(valid: torch.Tensor | None) -> int:
    return 0 if valid is None else valid.shape[1]


def _size(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.numel() * t.element_size()


def _append(old: quant.Quantized, codes: torch.Tensor, new: quant.Quantized) -> quant.Quantized:
    return quant.Quantized(
        torch.cat([old.codes, codes], dim=-2),
        torch.cat([old.scale, new.scale], dim=-2),
        torch.cat([old.zero, new.zero], dim=-2),
        old.bits,
        old.n,
    )


def _left_pad_tokens(q: quant.Quantized, n: int) -> quant.Quantized:
    """Per-token codes ``q`` (values) with ``n`` zero tokens (codes and stats) in front."""
    if n == 0:
        return q
    b, h, _, p = q.codes.shape
    codes = q.codes.new_zeros(b, h, n, p)
    stat = q.scale.new_zeros(b, h, n, q.scale.shape[-1])
    return quant.Quantized(
        torch.cat([codes, q.codes], -2),
        torch.cat([stat, q.scale], -2),
        torch.cat([stat, q.zero], -2),
        q.bits,
        q.n,
    )


def _grow_chunks(q: quant.Quantized, n_chunks: int, group: int) -> quant.Quantized:
    """``q`` with room for ``n_chunks`` key chunks (new ones zero): codes ``[B, H, nG, p]``."""
    b, h, c, d = q.scale.shape
    if n_chunks <= c:
        return q
    extra = n_chunks - c
    codes = q.codes.new_zeros(b, h, extra * group, q.codes.shape[-1])
    stat = q.scale.new_zeros(b, h, extra, d)
    return _append(q, codes, quant.Quantized(codes, stat, stat, q.bits, q.n))


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


def _head_dim(config: PretrainedConfig) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


class QuantizedKVCache(Cache):
    """A Cache of burnish quantized layers (``layer_class``), created lazily per layer index.

    ``Cls(model=None, config=None, **options)``: ``options`` are the attributes of
    ``config_class`` (the one place their defaults live), or pass a ready ``config``.
    Unknown option names raise ConfigError. ``model``, if given, is switched to the
    ``burnish_kv`` attention (sdpa + prefill hand-off of the mask and queries) and its head
    dimension is checked against the options; the switch is undone by
    :meth:`restore_attention`, or scoped by using the cache as a context manager::

        with KIVICache(model, bits=2) as cache:
            model.generate(**inputs, cache=cache)
    """

    config_class: ClassVar[type[KIVIConfig]] = KIVIConfig
    layer_class: ClassVar[type[KIVILayer]] = KIVILayer

    def __init__(
        self,
        model: PreTrainedModel | None = None,
        config: KIVIConfig | None = None,
        **options: object,
    ) -> None:
        self.config = make_config(self.config_class, config, options, type(self).__name__)
        if model is not None:
            self.config.check_head_dim(_head_dim(model.config))
        super().__init__(layers=[])
        self._switched: tuple[PreTrainedModel, str] | None = None
        if model is not None:
            self._switched = (model, enable_kv_attention(model))

    def restore_attention(self) -> None:
        """Switch the model given at construction back to its own attention (idempotent)."""
        if self._switched is not None:
            model, previous = self._switched
            disable_kv_attention(model, previous)
            self._switched = None

    def __enter__(self) -> QuantizedKVCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore_attention()

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        while len(self.layers) <= layer_idx:
            self.layers.append(self.make_layer(len(self.layers)))
        return super().update(key_states, value_states, layer_idx, *args, **kwargs)

    def make_layer(self, layer_idx: int) -> KIVILayer:
        """A fresh layer ``layer_idx`` (created lazily, at its first update)."""
        return self.layer_class(self.config, layer_idx)

    def absorb(self, other: QuantizedKVCache) -> None:
        """Append ``other``'s rows (batch axis) after this cache's, for continuous batching:
        the shorter cache is left-padded to the longer one's length (padding slots, which the
        caller's attention mask must also mark), so each row keeps exactly its own tokens,
        codes and statistics. Both caches must be of the same class and options, past their
        prefill; ``other`` must not be used afterwards."""
        if type(other) is not type(self) or other.config != self.config:
            raise ConfigError("only caches of the same class and options can be merged")
        if len(self.layers) != len(other.layers):
            raise ConfigError("cannot merge caches holding different numbers of layers")
        for a, b in zip(self.layers, other.layers, strict=True):
            if isinstance(a, DummyLayer) or isinstance(b, DummyLayer):
                if type(a) is not type(b):
                    raise ConfigError("cannot merge caches that skip different layers")
                continue  # a skipped attention block (Hopscotch): nothing stored
            if a.pending or b.pending:
                raise ConfigError("cannot merge a cache before its prefill was quantized")
            length = max(a.get_seq_length(), b.get_seq_length())
            values = max(a.values.shape[-2], b.values.shape[-2])
            width = max(_width(a.valid) + length - a.get_seq_length(),
                        _width(b.valid) + length - b.get_seq_length())  # fmt: skip
            for x in (a, b):
                x.left_pad_to(length, values, width)
            start = min(a.key_start, b.key_start)
            a.lower_key_start(start)
            b.lower_key_start(start)
            a.cat_batch(b)

    def trim_left(self, n: int) -> None:
        """Drop the ``n`` oldest slots of every layer; they must be padding in every row
        (the caller drops the same columns of its attention mask)."""
        for layer in self.kv_layers():
            layer.trim_left(n)

    def kv_layers(self) -> list[KIVILayer]:
        """The layers that store KV (not the ``DummyLayer`` of a skipped attention block)."""
        return [layer for layer in self.layers if not isinstance(layer, DummyLayer)]

    def nbytes(self) -> dict[str, int]:
        """Exact bytes held by all layers, by kind (see the layer's ``nbytes``) and ``total``."""
        out: dict[str, int] = {}
        for layer in self.kv_layers():
            for k, v in layer.nbytes().items():
                out[k] = out.get(k, 0) + v
        return out or self.make_layer(0).nbytes()


class KIVICache(QuantizedKVCache):
    """KIVI KV cache: ``model.generate(..., cache=KIVICache(model, bits=2))``.

    Args:
        model: if given, switched to the ``burnish_kv`` attention (sdpa + prefill hand-off) so
            that left padding is excluded from the statistics; otherwise all slots count.
        config: a ready :class:`KIVIConfig` (instead of ``options``).
        **options: attributes of :class:`KIVIConfig` (``bits``, ``group_size``,
            ``residual_length``, ``value_group_size``); its defaults apply to the rest.
    """

    config_class = KIVIConfig
    layer_class = KIVILayer
