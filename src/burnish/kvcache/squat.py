"""SQuat: KIVI layout with keys quantized so their error is nearly orthogonal to the queries.

(Wang, Han, Xu, Srivastava, 2025, arXiv 2503.24358; spec: shared/methods/squat.md.)

The maths, as pure functions:

1. :func:`query_subspace` - per KV head, stack the prompt's queries of its query-head group
   (padding removed), SVD in fp32, keep ``Q_hat = S_r V_r^T / sqrt(N)`` (r x d). burnish divides
   by ``sqrt(N)`` (N = stacked queries) so ``Q_hat^T Q_hat`` is the top-r part of the queries'
   second moment and ``lam`` does not grow with the prompt length.
2. :func:`weight_matrix` - ``A = I + lam Q_hat^T Q_hat`` (d x d): quantizing a key with error
   ``e`` costs ``e^T A e = |e|^2 + lam |Q_hat e|^2``, a relaxation of "Q_hat e = 0".
3. :func:`squat_quantize_keys` - GPTQ/OBS-style closed form. The head dimension is split into
   blocks. After block j is quantized, the errors ``e_F`` of all quantized coordinates F
   (``:e``) are fixed; the remaining coordinates R (``e:``) are shifted to the minimiser of
   ``e^T A e`` over ``e_R`` (the continuous relaxation: as if they were then stored exactly),
   ``e_R* = -C_j e_F`` with ``C_j = A_RR^{-1} A_RF`` (:func:`obs_coefficients`, the explicit
   Schur-complement form, ``(d - e) x e`` per block).
4. :func:`subspace_weights` - what the cache stores instead of the ``C_j``. ``A`` is identity
   plus rank r, so by Woodbury ``C_j = lam Q_R^T (I_r + lam Q_R Q_R^T)^{-1} Q_F`` (``Q_F``,
   ``Q_R``: the columns of ``Q_hat`` in F and R). The shift of a chunk's keys ``err [G, e]``
   is then ``err C_j^T = ((err Q_F^T) W_j) Q_R`` with one ``r x r`` matrix
   ``W_j = lam (I_r + lam Q_R Q_R^T)^{-1}`` per block, and ``err Q_F^T [G, r]`` accumulates
   block by block. Per KV head the cache keeps ``Q_hat`` (r x d) and the ``W_j``
   (``(n_blocks - 1) x r x r``): 12 KB at d = 128, r = 8, block 4, against 349 KB for the
   explicit ``C_j``; the update also costs ``O(G r d)`` per block instead of ``O(G e (d - e))``.
   Both are precomputed once per row and head at the prefill; no iterations.

Keys are quantized after RoPE (what the cache receives); the paper's pre-RoPE variant is
:mod:`burnish.kvcache.squat_pre`.
Scales and zero points of a block are taken per channel over the G tokens of the chunk after
the shifts from earlier blocks, so a shifted key never leaves its own block's range.

Tuning note: the gain over KIVI depends on how concentrated the queries are. The paper's
models (Llama-3.1-8B, d = 128) have a few dominant query directions; the zoo models (d = 32)
have a nearly flat query spectrum, where SQuat can only match KIVI (see SQuatConfig.lam).
The correction assumes the shifted coordinates are then stored exactly; at 2 bits with
per-channel statistics they are not, and a large lambda widens their ranges.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from burnish.errors import ConfigError
from burnish.kvcache import quant
from burnish.kvcache.kivi import KIVIConfig, KIVILayer, QuantizedKVCache, prefill_validity

__all__ = [
    "LAM_SCALES",
    "SQuatCache",
    "SQuatConfig",
    "SQuatLayer",
    "block_ranges",
    "obs_coefficients",
    "query_subspace",
    "squat_quantize_keys",
    "subspace_weights",
    "weight_matrix",
]


LAM_SCALES = ("moment", "residual")


def query_subspace(queries: torch.Tensor, rank: int, scale: str = "moment") -> torch.Tensor:
    """``Q_hat = S_r V_r^T / sqrt(N)`` from stacked queries ``[..., N, d]``; returns
    ``[..., r', d]`` with ``r' = min(rank, N, d)``; computed in float32.

    ``scale="residual"`` further divides by ``sqrt(c)``, ``c`` = the mean second-moment
    eigenvalue outside the top r (``sum_{i > r} s_i^2 / (N (d - r))``; the mean over all d
    when r = d), so ``Q_hat^T Q_hat = M_r / c`` (``M_r``: the top-r part of the second moment
    ``M = Q^T Q / N``). Then ``|e|^2 + lam |Q_hat e|^2`` at ``lam = 1`` is ``e^T (c I + M_r) e
    / c``: the expected squared logit error ``e^T M e`` with the queries' energy outside the
    subspace taken as isotropic, in the same units for every layer and head, whatever their
    query norms.
    """
    if scale not in LAM_SCALES:
        raise ConfigError(f"unknown squat lam_scale {scale!r}; choose {', '.join(LAM_SCALES)}")
    q = queries.float()
    n, d = q.shape[-2], q.shape[-1]
    _, s, vh = torch.linalg.svd(q, full_matrices=False)  # s [..., k], vh [..., k, d]
    r = min(rank, s.shape[-1])
    q_hat = s[..., :r, None] * vh[..., :r, :] / math.sqrt(max(n, 1))
    if scale == "moment":
        return q_hat
    s2 = s.square() / max(n, 1)  # [..., k]: second-moment eigenvalues (the rest are 0)
    rest = s2[..., r:].sum(-1) / (d - r) if r < d else s2.sum(-1) / d  # [...]
    return q_hat / rest.clamp_min(1e-12).sqrt()[..., None, None]


def weight_matrix(q_hat: torch.Tensor, lam: float) -> torch.Tensor:
    """``A = I + lam Q_hat^T Q_hat`` for ``q_hat [..., r, d]``; returns ``[..., d, d]`` fp32."""
    q = q_hat.float()
    eye = torch.eye(q.shape[-1], dtype=torch.float32, device=q.device)
    return eye + lam * q.transpose(-1, -2) @ q


def block_ranges(dim: int, block_size: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` covering ``0 .. dim``, ``block_size`` wide (last may be short)."""
    return [(s, min(s + block_size, dim)) for s in range(0, dim, block_size)]


def obs_coefficients(a: torch.Tensor, blocks: list[tuple[int, int]]) -> list[torch.Tensor]:
    """The explicit form: per block boundary ``e``, ``C = A_RR^{-1} A_RF`` (F = ``:e``, R = ``e:``).

    ``a [..., d, d]`` (symmetric positive definite). Returns one ``[..., d - e, e]`` per block
    but the last; the optimal shift of the remaining coordinates is ``-C e_F``. The cache uses
    the equivalent, smaller :func:`subspace_weights`; this is the reference it is tested against.
    """
    out = []
    for _, e in blocks[:-1]:
        a_rr = a[..., e:, e:]
        a_rf = a[..., e:, :e]
        out.append(torch.linalg.solve(a_rr, a_rf))
    return out


def subspace_weights(
    q_hat: torch.Tensor, lam: float, blocks: list[tuple[int, int]]
) -> torch.Tensor:
    """``W_j = lam (I_r + lam Q_R Q_R^T)^{-1}`` per block boundary (R = the later blocks).

    ``q_hat [..., r, d]``; returns ``[..., n_blocks - 1, r, r]`` fp32, with
    ``C_j^T = Q_F^T W_j Q_R`` (Woodbury; see the module docstring).
    """
    q = q_hat.float()
    grams = torch.stack([q[..., s:e] @ q[..., s:e].transpose(-1, -2) for s, e in blocks], -3)
    later = grams.flip(-3).cumsum(-3).flip(-3)[..., 1:, :, :]  # [..., nb-1, r, r]: sum over R
    eye = torch.eye(q.shape[-2], dtype=torch.float32, device=q.device)
    return lam * torch.linalg.inv(eye + lam * later)


def squat_quantize_keys(
    x: torch.Tensor,
    q_hat: torch.Tensor | None,
    weights: torch.Tensor | None,
    blocks: list[tuple[int, int]],
    bits: int,
) -> tuple[quant.Quantized, torch.Tensor]:
    """Quantize key chunks ``x [..., G, d]`` block by block with OBS corrections.

    ``q_hat [..., r, d]`` and ``weights [..., n_blocks - 1, r, r]`` (:func:`subspace_weights`)
    broadcast against ``x``'s leading axes (pass ``[B, H, 1, r, d]`` and
    ``[B, H, 1, nb - 1, r, r]`` for chunks ``[B, H, n, G, d]``); ``weights`` None gives plain
    per-channel KIVI. Returns (codes ``[..., G, packed]``, stats ``[..., d]``) and the
    dequantized keys (fp32).
    """
    xf = x.float()
    target = xf.clone()
    khat = torch.empty_like(xf)
    codes = torch.empty(xf.shape, dtype=torch.uint8, device=x.device)
    scales, zeros = [], []
    z = None  # [..., G, r]: err_F @ Q_F^T over the blocks quantized so far
    for j, (s, e) in enumerate(blocks):
        scale, zero = quant.minmax_stats(target[..., s:e], dim=-2, bits=bits)  # [..., 1, bs]
        c = quant.quantize(target[..., s:e], scale, zero, bits)
        codes[..., s:e] = c
        khat[..., s:e] = quant.dequantize(c, scale, zero, torch.float32)
        scales.append(scale)
        zeros.append(zero)
        if weights is not None and j < len(blocks) - 1:
            q = q_hat.float()
            err = khat[..., s:e] - xf[..., s:e]  # [..., G, bs]: this block's fixed errors
            zj = err @ q[..., s:e].transpose(-1, -2)  # [..., G, r]
            z = zj if z is None else z + zj
            target[..., e:] = xf[..., e:] - (z @ weights[..., j, :, :]) @ q[..., e:]
    scale = torch.cat(scales, dim=-1).squeeze(-2)
    zero = torch.cat(zeros, dim=-1).squeeze(-2)
    return quant.Quantized(quant.pack_codes(codes, bits), scale, zero, bits, x.shape[-1]), khat


@dataclass(frozen=True)
class SQuatConfig(KIVIConfig):
    """KIVI options plus SQuat's (the one place their defaults are defined).

    Attributes:
        rank: r, dimension of the query subspace per KV head (at most the head dimension).
        lam: lambda, weight of the error inside the query subspace (Q_hat is normalised by
            sqrt(N); see :func:`query_subspace`). The useful size is about 1 / (the queries'
            second-moment eigenvalues outside the subspace): larger values push the error out
            of the top-r directions into the others (which carry query energy too) and widen
            the per-channel ranges of later blocks. Default 0.1 (rank 8, block 4) was the best
            measured on the zoo models (head dim 32, nearly isotropic queries, second-moment
            eigenvalues ~2-6); lambda = 10 there doubled the key error and was worse than KIVI.
        block_size: channels quantized together before each correction.
        lam_scale: what ``lam`` is relative to (:func:`query_subspace`): ``"moment"`` (the
            queries' second moment, so the useful lam depends on the model's query norms) or
            ``"residual"`` (the mean second-moment eigenvalue outside the top r, per layer and
            head: ``lam = 1`` then weighs the error as the queries' logits would).
    """

    rank: int = 8
    lam: float = 0.1
    block_size: int = 4
    lam_scale: str = "moment"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"squat rank must be a positive integer, got {self.rank!r}")
        if not self.lam >= 0:
            raise ConfigError(f"squat lambda must be >= 0, got {self.lam!r}")
        if not isinstance(self.block_size, int) or self.block_size < 1:
            raise ConfigError(
                f"squat block_size must be a positive integer, got {self.block_size!r}"
            )
        if self.lam_scale not in LAM_SCALES:
            raise ConfigError(
                f"squat lam_scale must be one of {', '.join(LAM_SCALES)}, got {self.lam_scale!r}"
            )

    def check_head_dim(self, head_dim: int) -> None:
        """Raise ConfigError if these options cannot quantize heads of size ``head_dim``."""
        super().check_head_dim(head_dim)
        if self.rank > head_dim:
            raise ConfigError(
                f"squat rank r={self.rank} is larger than the head dimension {head_dim}; "
                f"choose r <= {head_dim}"
            )


class SQuatLayer(KIVILayer):
    """A KIVI layer whose key chunks go through :func:`squat_quantize_keys`."""

    def __init__(self, config: SQuatConfig, layer_idx: int = 0) -> None:
        super().__init__(config, layer_idx)
        self.q_hat: torch.Tensor | None = None  # [B, H_kv, r, d] fp32
        self.weights: torch.Tensor | None = None  # [B, H_kv, n_blocks - 1, r, r] fp32

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.config.check_head_dim(key_states.shape[-1])
        super().lazy_initialization(key_states, value_states)
        self.blocks = block_ranges(self.head_dim, self.config.block_size)

    def observe_prefill(self, query: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        """Build the per-row, per-KV-head query subspace from the prefill, then quantize.

        A Python loop over rows, at the prefill only: each row's SVD sees exactly its own
        queries (padding dropped), as it would alone.
        """
        b, n_heads, t, d = query.shape
        h = self.keys.shape[1]
        self.record_padding(prefill_validity(attention_mask, b, t))
        q = query.reshape(b, h, n_heads // h, t, d)  # query heads of KV head j: j*g .. j*g+g-1
        r = self.config.rank
        self.q_hat = q.new_zeros(b, h, r, d, dtype=torch.float32)  # zero rows: rank-deficient
        for i in range(b):
            rows = q[i] if self.valid is None else q[i][:, :, self.valid[i]]  # [H, g, Tv, d]
            if rows.shape[-2]:
                stacked = rows.reshape(h, -1, d)  # [H, g*Tv, d]
                qh = query_subspace(stacked, r, self.config.lam_scale)  # [H, r', d]
                self.q_hat[i, :, : qh.shape[-2]] = qh
        self.weights = subspace_weights(self.q_hat, self.config.lam, self.blocks)
        self.finish_prefill()

    def finish_prefill(self) -> None:
        if self.weights is None:
            raise ConfigError(
                "SQuatCache never received the prompt's queries: create it as "
                "SQuatCache(model, ...) or generate inside `with kv_attention(model):`"
            )
        super().finish_prefill()

    def quantize_keys(self, chunks: torch.Tensor, rows: torch.Tensor) -> quant.Quantized:
        idx = rows.to(self.device)
        q_hat = self.q_hat.index_select(0, idx).unsqueeze(2)  # [B', H, 1, r, d]
        weights = self.weights.index_select(0, idx).unsqueeze(2)  # [B', H, 1, nb-1, r, r]
        q, _ = squat_quantize_keys(chunks, q_hat, weights, self.blocks, self.config.bits)
        return q

    def map_batch(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().map_batch(fn)
        if self.q_hat is not None:
            self.q_hat, self.weights = fn(self.q_hat), fn(self.weights)

    def nbytes(self) -> dict[str, int]:
        """KIVI's bytes plus ``subspace``: the query basis and the per-block r x r weights."""
        out = super().nbytes()
        held = [t for t in (self.q_hat, self.weights) if t is not None]
        out["subspace"] = sum(t.numel() * t.element_size() for t in held)
        out["total"] += out["subspace"]
        return out


class SQuatCache(QuantizedKVCache):
    """SQuat KV cache: ``model.generate(..., cache=SQuatCache(model, bits=2, rank=8))``.

    Args:
        model: switched to the ``burnish_kv`` attention (sdpa + prefill hand-off of queries);
            without it, generation must run inside :func:`~burnish.kvcache.kv_attention`.
        config: a ready :class:`SQuatConfig` (instead of ``options``).
        **options: attributes of :class:`SQuatConfig`: the KIVI layout (``bits``,
            ``group_size``, ``residual_length``, ``value_group_size``) and SQuat's ``rank``,
            ``lam``, ``block_size``; its defaults apply to the rest.
    """

    config_class = SQuatConfig
    layer_class = SQuatLayer
