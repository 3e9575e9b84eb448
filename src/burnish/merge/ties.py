"""TIES: trim each task vector, elect a sign per entry, average the agreeing entries.

Yadav et al., 2023 (arXiv 2306.01708), as mergekit defines it: keep the top ``density``
fraction of each d_i by magnitude, weight it, elect the sign of the sum, and (``normalize``,
on by default) divide the agreeing sum by the sum of the agreeing weights.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from burnish.merge.sparsify import RescaleNorm
from burnish.merge.task_vectors import merge_task_vectors

__all__ = ["ties"]


def ties(
    base: Tensor,
    models: Sequence[Tensor],
    weights: Sequence[float],
    densities: Sequence[float],
    *,
    lam: float = 1.0,
    normalize: bool = True,
    rescale: bool = False,
    rescale_norm: RescaleNorm = "l1",
) -> Tensor:
    """TIES merge of ``models`` onto ``base`` (shapes all S; returns float32 of shape S)."""
    return merge_task_vectors(
        base,
        models,
        weights,
        densities,
        sparsifier="magnitude",
        consensus=True,
        lam=lam,
        normalize=normalize,
        rescale=rescale,
        rescale_norm=rescale_norm,
    )
