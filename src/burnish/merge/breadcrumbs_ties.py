"""Breadcrumbs with TIES sign election: outlier + small-entry drop, then disjoint sum."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from burnish.merge.sparsify import RescaleNorm
from burnish.merge.task_vectors import merge_task_vectors

__all__ = ["breadcrumbs_ties"]


def breadcrumbs_ties(
    base: Tensor,
    models: Sequence[Tensor],
    weights: Sequence[float],
    densities: Sequence[float],
    *,
    gamma: float = 0.01,
    lam: float = 1.0,
    normalize: bool = False,
    rescale: bool = False,
    rescale_norm: RescaleNorm = "l1",
) -> Tensor:
    """Breadcrumbs-TIES merge onto ``base`` (shapes all S; returns float32, S)."""
    return merge_task_vectors(
        base,
        models,
        weights,
        densities,
        sparsifier="outliers",
        consensus=True,
        lam=lam,
        normalize=normalize,
        rescale=rescale,
        rescale_norm=rescale_norm,
        gamma=gamma,
    )
