"""Model breadcrumbs: drop both the largest outliers and the smallest entries of each d_i.

Davari & Belilovsky, 2023 (arXiv 2312.06795), as mergekit defines it: ``gamma`` (default
0.01) is the fraction of largest magnitudes removed, ``density`` the fraction kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from burnish.merge.sparsify import RescaleNorm
from burnish.merge.task_vectors import merge_task_vectors

__all__ = ["breadcrumbs"]


def breadcrumbs(
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
    """Breadcrumbs merge of ``models`` onto ``base`` (shapes all S; returns float32, S)."""
    return merge_task_vectors(
        base,
        models,
        weights,
        densities,
        sparsifier="outliers",
        consensus=False,
        lam=lam,
        normalize=normalize,
        rescale=rescale,
        rescale_norm=rescale_norm,
        gamma=gamma,
    )
