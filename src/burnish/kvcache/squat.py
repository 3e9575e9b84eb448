"""SQuat: KIVI layout with keys quantized so their error is nearly orthogonal to the queries.

(Wang, Han, Xu, Srivastava, 2025, arXiv 2503.24358; spec: shared/methods/squat.md.)

The maths, as pure functions:

1. :func:`query_subspace` - per KV head, stack the prompt's queries of its query-head group
   (padding removed), SVD in fp32, keep ``Q_hat = S_r V_r^T / sqrt(N)`` (r x d). burnish divides
   by ``sqrt(N)`` (N = stacked queries) so ``Q_hat^T Q_hat`` is the top-r part of the queries'
   second moment and ``lam`` does not grow with the prompt length.
2. :func:`weight_matrix` - ``A = I + lam Q_hat^T Q_hat`` (d x d): quantizing a key with error
   ``e`` costs ``e^T A e = |e|^2 + lam |Q_hat e|^2``, a relaxation of "Q_hat e = 0".
3. :func:`obs_coefficients` / :func:`squat_quantize_keys` - GPTQ/OBS-style closed form. The
   head dimension is split into blocks. After block j is quantized, the errors ``e_F`` of all
   quantized coordinates F are fixed; the remaining coordinates R are shifted to the
   minimiser of ``e^T A e`` over ``e_R`` (the continuous relaxation: as if they were then
   stored exactly), ``e_R* = -A_RR^{-1} A_RF e_F``. ``C_j = A_RR^{-1} A_RF`` (the Schur
   complement pieces of A) is precomputed once per head; quantizing a chunk is then one
   matmul per block, no iterations.

Keys are quantized after RoPE (what the cache receives). The paper's better pre-RoPE variant
is not implemented: the cache never sees the rotary angles without patching the model.
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
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from burnish.errors import ConfigError
from burnish.kvcache import quant
from burnish.kvcache.kivi import KIVIConfig, KIVILayer, QuantizedKVCache, prefill_validity

__all__ = [
    "SQuatCache",
    "SQuatConfig",
    "SQuatLayer",
    "block_ranges",
    "obs_coefficients",
    "query_subspace",
    "squat_quantize_keys",
    "weight_matrix",
]


def query_subspace(queries: torch.Tensor, rank: int) -> torch.Tensor:
    """``Q_hat = S_r V_r^T / sqrt(N)`` from stacked queries ``[N, d]``; returns ``[r', d]``.

    ``r' = min(rank, N, d)``; computed in float32.
    """
    q = queries.float()
    n = q.shape[0]
    _, s, vh = torch.linalg.svd(q, full_matrices=False)  # s [min(N,d)], vh [min(N,d), d]
    r = min(rank, s.shape[0])
    return s[:r, None] * vh[:r] / math.sqrt(max(n, 1))


def weight_matrix(q_hat: torch.Tensor, lam: float) -> torch.Tensor:
    """``A = I + lam Q_hat^T Q_hat`` for ``q_hat [..., r, d]``; returns ``[..., d, d]`` fp32."""
    q = q_hat.float()
    eye = torch.eye(q.shape[-1], dtype=torch.float32, device=q.device)
    return eye + lam * q.transpose(-1, -2) @ q


def block_ranges(dim: int, block_size: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` covering ``0 .. dim``, ``block_size`` wide (last may be short)."""
    return [(s, min(s + block_size, dim)) for s in range(0, dim, block_size)]


def obs_coefficients(a: torch.Tensor, blocks: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Per block boundary ``e``: ``C = A_RR^{-1} A_RF`` with F = ``:e``, R = ``e:``.

    ``a [..., d, d]`` (symmetric positive definite). Returns one ``[..., d - e, e]`` per block
    but the last; the optimal shift of the remaining coordinates is ``-C e_F``.
    """
    out = []
    for _, e in blocks[:-1]:
        a_rr = a[..., e:, e:]
        a_rf = a[..., e:, :e]
        out.append(torch.linalg.solve(a_rr, a_rf))
    return out


def squat_quantize_keys(
    x: torch.Tensor,
    coefs: list[torch.Tensor] | None,
    blocks: list[tuple[int, int]],
    bits: int,
) -> tuple[quant.Quantized, torch.Tensor]:
    """Quantize key chunks ``x [..., G, d]`` block by block with OBS corrections.

    ``coefs[j]`` is ``[..., d - e_j, e_j]`` broadcastable against ``x``'s leading axes (pass
    ``[B, H, 1, r, f]`` for chunks ``[B, H, n, G, d]``); None gives plain per-channel KIVI.
    Returns (codes ``[..., G, packed]``, stats ``[..., d]``) and the dequantized keys (fp32).
    """
    xf = x.float()
    target = xf.clone()
    khat = torch.empty_like(xf)
    codes = torch.empty(xf.shape, dtype=torch.uint8, device=x.device)
    scales, zeros = [], []
    for j, (s, e) in enumerate(blocks):
        scale, zero = quant.minmax_stats(target[..., s:e], dim=-2, bits=bits)  # [..., 1, bs]
        c = quant.quantize(target[..., s:e], scale, zero, bits)
        codes[..., s:e] = c
        khat[..., s:e] = quant.dequantize(c, scale, zero, torch.float32)
        scales.append(scale)
        zeros.append(zero)
        if coefs is not None and j < len(blocks) - 1:
            err = khat[..., :e] - xf[..., :e]  # [..., G, e]: errors of all fixed coordinates
            target[..., e:] = xf[..., e:] - err @ coefs[j].transpose(-1, -2)
    scale = torch.cat(scales, dim=-1).squeeze(-2)
    zero = torch.cat(zeros, dim=-1).squeeze(-2)
    return quant.Quantized(quant.pack_codes(codes, bits), scale, zero, bits, x.shape[-1]), khat


@dataclass(frozen=True)
class SQuatConfig(KIVIConfig):
    """KIVI options plus SQuat's.

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
    """

    rank: int = 8
    lam: float = 0.1
    block_size: int = 4

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

    def check_head_dim(self, head_dim: int) -> None:
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
        self.coefs: list[torch.Tensor] | None = None  # per block: [B, H_kv, d - e, e]

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.config.check_head_dim(key_states.shape[-1])
        super().lazy_initialization(key_states, value_states)
        self.blocks = block_ranges(self.head_dim, self.config.block_size)

    def observe_prefill(self, query: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        """Build the per-row, per-KV-head query subspace from the prefill, then quantize."""
        b, n_heads, t, d = query.shape
        h = self.keys.shape[1]
        self.valid = prefill_validity(attention_mask, b, t)
        q = query.reshape(b, h, n_heads // h, t, d)  # query heads of KV head j: j*g .. j*g+g-1
        r = self.config.rank
        self.q_hat = q.new_zeros(b, h, r, d, dtype=torch.float32)  # zero rows: rank-deficient
        for i in range(b):
            rows = q[i] if self.valid is None else q[i][:, :, self.valid[i]]  # [H, g, Tv, d]
            for j in range(h):
                qh = query_subspace(rows[j].reshape(-1, d), r)
                self.q_hat[i, j, : qh.shape[0]] = qh
        self.coefs = obs_coefficients(weight_matrix(self.q_hat, self.config.lam), self.blocks)
        self.finish_prefill()

    def finish_prefill(self) -> None:
        if self.coefs is None:
            raise ConfigError(
                "SQuatCache never received the prompt's queries: create it as "
                "SQuatCache(model, ...) or generate inside `with kv_attention(model):`"
            )
        super().finish_prefill()

    def quantize_keys(self, chunks: torch.Tensor) -> quant.Quantized:
        coefs = [c.unsqueeze(2) for c in self.coefs]  # [B, H, 1, r, f] against [B, H, n, G, d]
        q, _ = squat_quantize_keys(chunks, coefs, self.blocks, self.config.bits)
        return q

    def map_batch(self, fn) -> None:
        super().map_batch(fn)
        if self.q_hat is not None:
            self.q_hat = fn(self.q_hat)
            self.coefs = [fn(c) for c in self.coefs]


class SQuatCache(QuantizedKVCache):
    """SQuat KV cache: ``model.generate(..., cache=SQuatCache(model, bits=2))``.

    Args:
        model: switched to the ``burnish_kv`` attention (sdpa + prefill hand-off of queries);
            without it, generation must run inside :func:`~burnish.kvcache.kv_attention`.
        bits, group_size, residual_length, value_group_size: KIVI layout (:class:`KIVIConfig`).
        rank, lam, block_size: SQuat options (:class:`SQuatConfig`).
    """

    def __init__(
        self,
        model: PreTrainedModel | None = None,
        bits: int = 2,
        group_size: int = 32,
        residual_length: int = 32,
        value_group_size: int | None = None,
        rank: int = 8,
        lam: float = 0.1,
        block_size: int = 4,
    ) -> None:
        self.config = SQuatConfig(
            bits, group_size, residual_length, value_group_size, rank, lam, block_size
        )
        if model is not None:
            cfg = model.config
            head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
            self.config.check_head_dim(head_dim)
        super().__init__(lambda i: SQuatLayer(self.config, i), model)
