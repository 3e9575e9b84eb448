"""Sparsifiers for task vectors: magnitude trim (TIES), random drop (DARE), outliers (breadcrumbs).

Each function takes one task vector ``delta`` (any shape, float) and returns a boolean mask of
the same shape that says which entries survive. :func:`apply_mask` zeroes the others and,
when asked, rescales the survivors:

- ``"l1"`` (the default): match the L1 norm of the untouched delta. This is what
  ``rescale: true`` means in mergekit 0.1.5, for every sparsifier.
- ``"density"``: divide by the density, as the DARE paper does; for a random drop this keeps
  the expectation of every entry equal to the task vector. burnish only; asked for with
  ``rescale_norm: density``.

Which entries survive a magnitude trim or an outlier drop is decided exactly as mergekit
decides it on CPU, ties included (see :func:`magnitude_mask` for the one exception).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "RescaleNorm",
    "TieBreak",
    "apply_mask",
    "magnitude_mask",
    "outlier_mask",
    "random_mask",
    "sparsify",
]

RescaleNorm = Literal["l1", "density"]
TieBreak = Literal["mergekit", "index"]
Sparsifier = Literal["magnitude", "random", "outliers"]


def magnitude_mask(delta: Tensor, density: float, ties: TieBreak = "mergekit") -> Tensor:
    """Keep the ``k = max(1, int(density * numel))`` largest-magnitude entries (TIES trim).

    Entries above the k-th largest magnitude (the threshold) are always kept. When the entries
    tied at the threshold do not all fit, ``ties`` chooses among them:

    - ``"mergekit"``: the ones mergekit 0.1.5 keeps on CPU, i.e. the first k indices of
      ``torch.argsort(|delta|, descending=True)`` on float32 magnitudes. Only that (unstable)
      sort knows which, so it is run, on the whole tensor, only then.
    - ``"index"``: the first ones in index order, without a sort (mergekit on CUDA, whose sort
      is stable for tensors over 4096 entries, keeps these).

    A zero threshold needs neither: the entries tied at it are zeros, and keeping a zero
    changes no output (sum, sign election, divisor, L1 norm), so they are left out and fewer
    than k entries may be marked.

    Memory: the threshold comes from an in-place selection (numpy's introselect) on one
    float32 copy of |delta| (4 bytes per entry); the tie-breaking sort, when needed, adds an
    int64 index (8 bytes per entry) and sorts that copy in place.
    """
    if density >= 1:
        return torch.ones_like(delta, dtype=torch.bool)
    n = delta.numel()
    k = max(1, int(density * n))
    threshold = _kth_largest_magnitude(delta, k)
    d = delta if delta.dtype == torch.float32 else delta.float()  # compare what was ranked
    mask = (d > threshold) | (d < -threshold)  # strictly above the threshold
    if threshold == 0:
        return mask
    tied = (d == threshold) | (d == -threshold)
    missing = k - int(mask.sum())
    if int(tied.sum()) == missing:  # every tied entry fits: no choice to make
        return mask.logical_or_(tied)
    if ties == "index":
        mask.view(-1)[tied.reshape(-1).nonzero()[:missing, 0]] = True
        return mask
    del mask, tied
    return _argsort_mask(delta, k)


def _kth_largest_magnitude(delta: Tensor, k: int) -> float:
    """The k-th largest of |delta| (1 <= k <= numel), by selection on one float32 copy."""
    mags = delta.detach().abs().reshape(-1).float().cpu()  # [N], our own copy
    n = mags.numel()
    mags.numpy().partition(n - k)  # in place: mags[n - k] is the k-th largest magnitude
    return float(mags[n - k])


def _argsort_mask(delta: Tensor, k: int) -> Tensor:
    """True at the first k of ``argsort(|delta|, descending=True)``: mergekit's selection."""
    mags = delta.detach().abs().reshape(-1).float().cpu()  # [N], our own copy
    order = torch.empty(mags.numel(), dtype=torch.long)
    # Sorting the copy in place gives argsort's exact permutation without a second [N] copy.
    torch.sort(mags, descending=True, out=(mags, order))
    del mags
    mask = torch.zeros(delta.numel(), dtype=torch.bool)
    mask[order[:k]] = True
    return mask.reshape(delta.shape).to(delta.device)


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
    norm: RescaleNorm = "l1",
    inplace: bool = False,
) -> Tensor:
    """``delta * mask``, rescaled to the original L1 norm (or by ``1 / density``) if ``rescale``.

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
    norm: RescaleNorm = "l1",
    gamma: float = 0.01,
    generator: torch.Generator | None = None,
    ties: TieBreak = "mergekit",
    inplace: bool = False,
) -> Tensor:
    """Sparsify one task vector with ``method`` ('magnitude', 'random' or 'outliers').

    ``ties`` is the magnitude trim's tie-break (see :func:`magnitude_mask`).
    """
    if method == "magnitude":
        mask = magnitude_mask(delta, density, ties)
    elif method == "random":
        mask = random_mask(delta, density, generator)
    elif method == "outliers":
        mask = outlier_mask(delta, density, gamma)
    else:
        raise ValueError(f"unknown sparsifier {method!r}")
    return apply_mask(delta, mask, density, rescale, norm, inplace)
