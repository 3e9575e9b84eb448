"""The task-vector family in one function: sparsify, (optionally) elect signs, combine.

For fine-tunes W_1..W_k of base W_0 the task vectors are d_i = W_i - W_0. With weights w_i:

    mixed = sum_i w_i * s(d_i) * m_i          m_i = 1, or TIES agreement with the elected sign
    mixed /= sum_i w_i * m_i                  only if ``normalize`` (zeros in the divisor -> 1)
    W = W_0 + lambda * mixed

where s is a sparsifier (identity, magnitude trim, random drop, outlier drop). This is how
mergekit defines task arithmetic, TIES, DARE and breadcrumbs; each method file picks its parts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from burnish.merge.consensus import agreement_mask, elect_sign
from burnish.merge.sparsify import RescaleNorm, Sparsifier, TieBreak, sparsify

__all__ = ["merge_task_vectors"]


def merge_task_vectors(
    base: Tensor,
    models: Sequence[Tensor],
    weights: Sequence[float],
    densities: Sequence[float],
    *,
    sparsifier: Sparsifier | None,
    consensus: bool,
    lam: float = 1.0,
    normalize: bool = False,
    rescale: bool = False,
    rescale_norm: RescaleNorm = "l1",
    gamma: float = 0.01,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Merge ``models`` (each shaped like ``base``) into one tensor of ``base``'s shape.

    Computation is in float32; the result is float32 (the caller casts for saving).
    """
    if not models:
        return base.float()
    base32 = base.float()
    weighted = []  # k tensors of base's shape: w_i * s(d_i)
    for model, w, density in zip(models, weights, densities, strict=True):
        delta = torch.sub(model, base32)  # float32 by type promotion, no extra copy
        if sparsifier is not None:
            delta = sparsify(
                delta,
                sparsifier,
                density,
                rescale=rescale,
                norm=rescale_norm,
                gamma=gamma,
                generator=generator,
                ties=_tie_break(base, model),
                inplace=True,  # delta is ours
            )
        weighted.append(delta.mul_(w))
    mixed, divisor = _combine(weighted, weights, consensus, normalize)
    if divisor is not None:
        mixed /= divisor
    if lam != 1:
        mixed *= lam
    return mixed.add_(base32)  # mixed is ours


def _tie_break(base: Tensor, model: Tensor) -> TieBreak:
    """mergekit's tie-break where it trims the same numbers as burnish, else index order.

    mergekit computes each delta in its compute dtype (the inputs' dtype unless its YAML sets
    ``dtype``). From float32 weights that is burnish's float32 delta, so breaking ties as
    mergekit's sort does reproduces its trim exactly. From 16-bit weights mergekit usually
    trims 16-bit-rounded deltas, which no tie rule reproduces, and their few distinct values
    tie at nearly every threshold: the sort would triple the cost of the trim for nothing, so
    ties go in index order. (Only mergekit's ``dtype: float32`` on 16-bit inputs trims
    burnish's numbers; this function cannot see that setting, so ties differ there.)
    """
    return "mergekit" if base.dtype == model.dtype == torch.float32 else "index"


_CHUNK = 1 << 20  # elements per slice of the sign-consensus pass (bounds temporaries)


def _combine(
    weighted: list[Tensor], weights: Sequence[float], consensus: bool, normalize: bool
) -> tuple[Tensor, Tensor | None]:
    """Sum of the weighted deltas and, if ``normalize``, the divisor (never zero)."""
    if not consensus:
        mixed = weighted[0]  # summed in place: the weighted deltas are ours
        for d in weighted[1:]:
            mixed += d
        total = float(sum(weights))
        divisor = torch.tensor(total if abs(total) >= 1e-8 else 1.0)
        return mixed, divisor if normalize else None
    flat = [d.reshape(-1) for d in weighted]  # views, [N]
    mixed = torch.zeros_like(flat[0])
    divisor = torch.zeros_like(flat[0]) if normalize else None
    for start in range(0, flat[0].numel(), _CHUNK):
        part = [d[start : start + _CHUNK] for d in flat]
        sign = elect_sign(part)
        for d, w in zip(part, weights, strict=True):
            agree = agreement_mask(d, sign)
            mixed[start : start + _CHUNK] += d * agree
            if divisor is not None:
                divisor[start : start + _CHUNK] += w * agree
    shape = weighted[0].shape
    if divisor is None:
        return mixed.reshape(shape), None
    divisor[divisor == 0] = 1
    return mixed.reshape(shape), divisor.reshape(shape)
