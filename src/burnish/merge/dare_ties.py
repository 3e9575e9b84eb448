"""DARE + TIES: random drop with rescaling, then TIES sign election and disjoint sum.

Rescaling is as in :mod:`burnish.merge.dare_linear`: to the dropped d_i's original L1 norm by
default (mergekit), or by ``1 / density`` with ``rescale_norm="density"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from burnish.merge.sparsify import RescaleNorm
from burnish.merge.task_vectors import merge_task_vectors

__all__ = ["dare_ties"]


def dare_ties(
    base: Tensor,
    models: Sequence[Tensor],
    weights: Sequence[float],
    densities: Sequence[float],
    *,
    generator: torch.Generator | None = None,
    lam: float = 1.0,
    normalize: bool = False,
    rescale: bool = True,
    rescale_norm: RescaleNorm = "l1",
) -> Tensor:
    """DARE-TIES merge of ``models`` onto ``base`` (shapes all S; returns float32, S).

    Defaults follow mergekit: rescale on (L1), normalize off (the agreeing sum is not divided).
    """
    return merge_task_vectors(
        base,
        models,
        weights,
        densities,
        sparsifier="random",
        consensus=True,
        lam=lam,
        normalize=normalize,
        rescale=rescale,
        rescale_norm=rescale_norm,
        generator=generator,
    )
