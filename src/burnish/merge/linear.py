"""Linear merge (model soup): the weighted average of the models' weights."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

__all__ = ["linear"]


def linear(models: Sequence[Tensor], weights: Sequence[float], *, normalize: bool = True) -> Tensor:
    """``sum_i w_i W_i``, divided by ``sum_i w_i`` if ``normalize`` (mergekit's default).

    Args:
        models: k tensors of one shape S (any float dtype).
        weights: k weights.
    Returns:
        float32 tensor of shape S.
    """
    out = models[0].float() * weights[0]
    for model, w in zip(models[1:], weights[1:], strict=True):
        out.add_(model.float(), alpha=w)
    total = float(sum(weights))
    if normalize and abs(total) >= 1e-8:
        out /= total
    return out
