"""DARE + linear: randomly drop task-vector entries, rescale survivors, add the weighted sum.

Yu et al., 2024 (arXiv 2311.03099), as mergekit defines it. Each entry of d_i survives with
probability ``density``; with ``rescale`` (on by default) the survivors are scaled so that the
dropped d_i keeps its L1 norm (mergekit), or by ``1 / density`` (the DARE paper, which keeps
every entry's expectation) with ``rescale_norm="density"``. Seeded through ``generator``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from burnish.merge.sparsify import RescaleNorm
from burnish.merge.task_vectors import merge_task_vectors

__all__ = ["dare_linear"]


def dare_linear(
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
    """DARE-linear merge of ``models`` onto ``base`` (shapes all S; returns float32, S)."""
    return merge_task_vectors(
        base,
        models,
        weights,
        densities,
        sparsifier="random",
        consensus=False,
        lam=lam,
        normalize=normalize,
        rescale=rescale,
        rescale_norm=rescale_norm,
        generator=generator,
    )
