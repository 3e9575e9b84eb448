"""Task arithmetic: ``W_0 + lambda * sum_i w_i (W_i - W_0)`` (Ilharco et al., 2023)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from burnish.merge.task_vectors import merge_task_vectors

__all__ = ["task_arithmetic"]


def task_arithmetic(
    base: Tensor,
    models: Sequence[Tensor],
    weights: Sequence[float],
    *,
    lam: float = 1.0,
    normalize: bool = False,
) -> Tensor:
    """Add the weighted task vectors to ``base`` (shapes all S; returns float32 of shape S).

    ``normalize`` divides the sum by ``sum_i w_i`` (off by default, as in mergekit).
    """
    ones = [1.0] * len(models)
    return merge_task_vectors(
        base, models, weights, ones, sparsifier=None, consensus=False, lam=lam, normalize=normalize
    )
