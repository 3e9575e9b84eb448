"""SQuat-pre: SQuat with keys quantized before RoPE and rotated back when read (the paper's
better variant; spec: shared/methods/squat.md).

Why: RoPE turns each key by an angle that grows with its position, so post-RoPE keys of one
channel pair spin across a G-token chunk (wider per-channel ranges), and post-RoPE queries of
one head spread their energy over more directions than the pre-RoPE ones (a less
concentrated subspace). Before RoPE both are position-free.

How, without patching the model (transformers rotates keys before ``cache.update``):

- Positions: the model's own ``position_ids`` reach ``cache.update(..., kwargs=kwargs)`` (see
  :func:`~burnish.kvcache.rope.model_positions`); the layer keeps them per slot
  (``positions [B, T]``, int32: for left-padded ``generate`` that is the mask's cumsum, so a
  row's tokens are at 0, 1, ... whatever its padding, exactly as the model rotated them).
- Keys: the fp residual keeps the post-RoPE keys as given (the newest keys are exact). When a
  G-token chunk leaves the residual it is un-rotated with the model's ``cos, sin`` for its
  slots' positions (:func:`~burnish.kvcache.rope.unrotate`, exact up to rounding) and
  quantized by SQuat in pre-RoPE coordinates.
- Subspace: at the prefill hand-off the post-RoPE queries are un-rotated the same way (the
  queries share their token's position) before the per-KV-head SVD, so ``Q_hat`` lives in the
  pre-RoPE space of the keys it weighs.
- Reading: :meth:`SQuatPreLayer.stored_keys` dequantizes the chunks and rotates them with the
  ``cos, sin`` of each row's own token positions; the attention sees post-RoPE keys.

Costs: 4 bytes per token per layer for the positions (counted in ``nbytes()['bookkeeping']``)
and one ``cos, sin`` evaluation of the stored tokens per layer per decode step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import PreTrainedModel

from burnish.errors import ConfigError
from burnish.kvcache.kivi import KIVILayer, _size
from burnish.kvcache.rope import RopeFrame, model_positions, rotate, unrotate
from burnish.kvcache.squat import SQuatCache, SQuatConfig, SQuatLayer

__all__ = ["SQuatPreCache", "SQuatPreLayer"]


class SQuatPreLayer(SQuatLayer):
    """A SQuat layer whose key chunks are quantized before RoPE (see the module docstring)."""

    def __init__(
        self, config: SQuatConfig, layer_idx: int = 0, rope: RopeFrame | None = None
    ) -> None:
        super().__init__(config, layer_idx)
        self.rope = rope
        self.positions: torch.Tensor | None = None  # [B, T] int32: the model's RoPE position

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        if self.rope is None:
            raise ConfigError(
                "SQuatPreCache needs the model's rotary embedding: create it as "
                "SQuatPreCache(model, ...)"
            )
        super().lazy_initialization(key_states, value_states)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Record the new tokens' positions (from the model's ``position_ids``), then append."""
        b, _, t, _ = key_states.shape
        pos = model_positions(kwargs, b, t)
        if pos is None:
            raise ConfigError(
                "SQuatPreCache: the model passed no position_ids to cache.update, so the RoPE "
                "angles of the keys are unknown; use the 'squat' cache for this model"
            )
        pos = pos.to(key_states.device, torch.int32)
        self.positions = pos if self.positions is None else torch.cat([self.positions, pos], 1)
        return super().update(key_states, value_states, *args, **kwargs)

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``cos, sin [B', 1, n, d]`` float32 for ``positions [B', n]``, ready to broadcast."""
        cos, sin = self.rope.cos_sin(positions.long(), self.layer_idx)
        if cos.shape[-1] != self.head_dim:
            raise ConfigError(
                f"the rotary embedding covers {cos.shape[-1]} of the {self.head_dim} head "
                "channels; the pre-RoPE cache needs RoPE over the whole head"
            )
        return cos.unsqueeze(1), sin.unsqueeze(1)

    def observe_prefill(self, query: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        """Un-rotate the prefill's queries ``[B, n_heads, T, d]`` to pre-RoPE, then build
        SQuat's subspace from them and quantize."""
        cos, sin = self.cos_sin(self.positions[:, -query.shape[-2] :])
        super().observe_prefill(unrotate(query.float(), cos, sin), attention_mask)

    def prepare_chunk_keys(
        self, keys: torch.Tensor, slots: torch.Tensor, rows: torch.Tensor
    ) -> torch.Tensor:
        """Un-rotate residual keys ``[B', H, kG, d]`` at ``slots [B', kG]`` of ``rows``."""
        pos = self.positions.index_select(0, rows.to(self.device))  # [B', T]
        idx = slots.clamp(max=pos.shape[1] - 1).to(self.device)
        cos, sin = self.cos_sin(pos.gather(1, idx))
        return unrotate(keys.float(), cos, sin)

    def stored_keys(self) -> torch.Tensor:
        """Dequantized pre-RoPE chunks rotated by each row's own token positions:
        ``[B, H, C*G, d]`` in own coordinates (own token ``u`` of row ``i`` is slot
        ``pad_i + u``), in the cache dtype."""
        deq = super().stored_keys().float()  # [B, H, C*G, d] pre-RoPE
        own = torch.arange(deq.shape[-2], device=self.device)[None, :]  # [1, C*G]
        slots = (self.pad.to(self.device)[:, None] + own).clamp(max=self.positions.shape[1] - 1)
        cos, sin = self.cos_sin(self.positions.gather(1, slots))
        return rotate(deq, cos, sin).to(self.dtype)

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        if self.positions is not None:
            self.positions = self.positions[:, : self.get_seq_length()].clone()

    def reset(self) -> None:
        self.__init__(self.config, self.layer_idx, self.rope)

    def map_batch(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().map_batch(fn)
        if self.positions is not None:
            self.positions = fn(self.positions)

    def trim_left(self, n: int) -> None:
        super().trim_left(n)
        if n > 0:
            self.positions = self.positions[:, n:].clone()

    def left_pad_to(self, length: int, residual_values: int, validity_width: int) -> None:
        shift = length - self.get_seq_length()
        super().left_pad_to(length, residual_values, validity_width)
        self.positions = torch.cat([self.positions.new_zeros(self.positions.shape[0], shift),
                                    self.positions], 1)  # fmt: skip

    def nbytes(self) -> dict[str, int]:
        """SQuat's bytes; ``bookkeeping`` also counts the per-slot positions."""
        out = super().nbytes()
        out["bookkeeping"] += _size(self.positions)
        out["total"] += _size(self.positions)
        return out


class SQuatPreCache(SQuatCache):
    """SQuat-pre KV cache: ``model.generate(..., cache=SQuatPreCache(model, bits=2))``.

    Args:
        model: required: its rotary embedding un-rotates and re-rotates the keys; it is
            switched to the ``burnish_kv`` attention (sdpa + prefill hand-off of queries).
            ConfigError if it has no RoPE or an unsupported rope type
            (:data:`~burnish.kvcache.rope.SUPPORTED_ROPE_TYPES`).
        config: a ready :class:`~burnish.kvcache.squat.SQuatConfig` (instead of ``options``).
        **options: attributes of SQuatConfig (``bits``, ``group_size``, ``residual_length``,
            ``value_group_size``, ``rank``, ``lam``, ``block_size``).
    """

    layer_class = SQuatPreLayer

    def __init__(
        self,
        model: PreTrainedModel | None = None,
        config: SQuatConfig | None = None,
        **options: object,
    ) -> None:
        if model is None:
            raise ConfigError(
                "SQuatPreCache needs the model (its rotary embedding un-rotates and re-rotates "
                "the keys): SQuatPreCache(model, ...)"
            )
        self.rope = RopeFrame.from_model(model)
        super().__init__(model, config, **options)

    def make_layer(self, layer_idx: int) -> KIVILayer:
        return SQuatPreLayer(self.config, layer_idx, self.rope)
