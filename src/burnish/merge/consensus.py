"""TIES sign election: one sign per entry, and which task vectors agree with it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["agreement_mask", "elect_sign"]


def elect_sign(weighted_deltas: Sequence[Tensor]) -> Tensor:
    """The sign (+1 or -1) of the sum of the (weighted, trimmed) task vectors; 0 sums elect +1.

    Args:
        weighted_deltas: k tensors of one shape S.
    Returns:
        float tensor of shape S holding +1 or -1.
    """
    total = weighted_deltas[0].clone()
    for d in weighted_deltas[1:]:
        total += d
    return torch.where(total >= 0, 1.0, -1.0).to(total.dtype)


def agreement_mask(delta: Tensor, sign: Tensor) -> Tensor:
    """1 where ``delta`` is non-zero and has the elected sign, else 0 (float, shape of delta)."""
    return (torch.sign(delta) == sign).to(delta.dtype)
