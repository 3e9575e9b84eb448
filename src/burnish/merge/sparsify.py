"""Sparsifiers for task vectors: magnitude trim (TIES), random drop (DARE), outliers (breadcrumbs).

Each function takes one task vector ``delta`` (any shape, float) and returns a boolean mask of
the same shape that says which entries survive. :func:`apply_mask` zeroes the others and,
when asked, rescales the survivors:

- ``"density"``: divide by the density, as the DARE paper does; for a random drop this keeps
  the expectation of every entry equal to the task vector.
- ``"l1"``: match the L1 norm of the untouched delta (what mergekit 0.1.5 does for every
  sparsifier when ``rescale`` is on).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "RescaleNorm",
    "apply_mask",
    "magnitude_mask",
    "outlier_mask",
    "random_mask",
    "sparsify",
]

RescaleNorm = Literal["density", "l1"]
Sparsifier = Literal["magnitude", "random", "outliers"]


def magnitude_mask(delta: Tensor, density: float) -> Tensor:
    """Keep the ``k = max(1, int(density * numel))`` largest-magnitude entries (TIES trim).

    The k-th largest magnitude is found by an in-place selection (numpy's introselect) on one
    float32 copy of |delta|, without topk's index tensors; entries tied at that magnitude are
    kept in index order until exactly k survive.
    """
    if density >= 1:
        return torch.ones_like(delta, dtype=torch.bool)
    n = delta.numel()
    k = max(1, int(density * n))
    mags = delta.detach().abs().reshape(-1).float().cpu()  # [N], our own copy
    mags.numpy().partition(n - k)  # in place: mags[n - k] is the k-th largest magnitude
    threshold = float(mags[n - k])
    del mags
    mask = (delta > threshold) | (delta < -threshold)  # strictly above the threshold
    missing = k - int(mask.sum())
    if missing > 0:
        at = ((delta == threshold) | (delta == -threshold)).reshape(-1).nonzero()[:missing, 0]
        mask.view(-1)[at] = True
    return mask


def random_mask(delta: Tensor, density: float, generator: torch.Generator | None) -> Tensor:
    """Keep each entry independently with probability ``density`` (DARE drop)."""
    if density >= 1:
        return torch.ones_like(delta, dtype=torch.bool)
    draw = torch.rand(delta.shape, generator=generator, device=delta.device)  # U[0, 1)
    return draw < density


def outlier_mask(delta: Tensor, density: float, gamma: float) -> Tensor:
    """Breadcrumbs: drop the ``gamma`` fraction of largest magnitudes, then the smallest ones.

    ``int(density * numel)`` entries survive: those just below the top ``int(gamma * numel)``
    outliers (fewer outliers are dropped when density + gamma > 1). ``density >= 1`` keeps all.
    """
    if density >= 1:
        return torch.ones_like(delta, dtype=torch.bool)
    n = delta.numel()
    keep, top = int(density * n), int(gamma * n)
    bottom = max(0, n - keep - top)
    order = torch.argsort(delta.abs().reshape(-1).float())  # ascending magnitude, [N]
    mask = torch.zeros(n, dtype=torch.bool, device=delta.device)
    mask[order[bottom : bottom + keep]] = True
    return mask.reshape(delta.shape)


def apply_mask(
    delta: Tensor,
    mask: Tensor,
    density: float,
    rescale: bool,
    norm: RescaleNorm = "density",
    inplace: bool = False,
) -> Tensor:
    """``delta * mask``, rescaled by ``1 / density`` or to the original L1 norm if ``rescale``.

    ``inplace`` overwrites ``delta`` (saves one tensor of memory in the streaming merge).
    """
    before = delta.abs().sum() if rescale and norm == "l1" else None
    kept = delta.mul_(mask) if inplace else delta * mask
    if not rescale or density >= 1:
        return kept
    if norm == "density":
        return kept.div_(density)
    after = kept.abs().sum()
    if before < 1e-7 or after < 1e-7:
        return kept
    return kept.mul_(before / after)


def sparsify(
    delta: Tensor,
    method: Sparsifier,
    density: float,
    *,
    rescale: bool = False,
    norm: RescaleNorm = "density",
    gamma: float = 0.01,
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> Tensor:
    """Sparsify one task vector with ``method`` ('magnitude', 'random' or 'outliers')."""
    if method == "magnitude":
        mask = magnitude_mask(delta, density)
    elif method == "random":
        mask = random_mask(delta, density, generator)
    elif method == "outliers":
        mask = outlier_mask(delta, density, gamma)
    else:
        raise ValueError(f"unknown sparsifier {method!r}")
    return apply_mask(delta, mask, density, rescale, norm, inplace)
