"""Activation-informed merging (AIM; Nobari et al., 2025, arXiv 2502.02421): the maths.

With a_c the base model's mean |input activation| on input channel c of a layer,
I_c = a_c / max_c a_c in [0, 1], merged weight W_m and base weight W_0:

    W = W_0 + (W_m - W_0) * (1 - I * (1 - omega))       broadcast over the last (input) dim

computed as ``lerp(W_m, W_0, I * (1 - omega))``, which is exactly W_m where the factor is 0
(so omega = 1 reproduces the merge bit for bit) and exactly W_0 where it is 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase

import torch
from torch import Tensor

__all__ = ["aim_relax", "channel_importance", "module_omega"]


def channel_importance(activation: Tensor) -> Tensor:
    """I = a / max(a) for per-input-channel activation magnitudes a [C]; all-zero a gives 0."""
    a = activation.float()
    top = a.max()
    return a / top if top > 0 else torch.zeros_like(a)


def aim_relax(merged: Tensor, base: Tensor, importance: Tensor, omega: float) -> Tensor:
    """Pull each input channel of ``merged`` towards ``base`` by ``I_c * (1 - omega)``.

    Args:
        merged: merged weight [..., C] (a Linear weight is [out, in], a norm weight [C]).
        base: base weight, same shape.
        importance: I [C] in [0, 1].
        omega: in [0, 1]; 1 returns ``merged`` unchanged.
    Returns:
        float32 tensor of merged's shape.
    """
    if omega >= 1:
        return merged.float()
    pull = importance.float() * (1.0 - omega)  # [C], broadcasts over leading dims
    return torch.lerp(merged.float(), base.float(), pull)


def module_omega(module: str, omega: float, by_module: Mapping[str, float]) -> float:
    """The omega of ``module`` (e.g. 'model.layers.0.mlp.up_proj'): first matching glob, else
    the global ``omega``."""
    for pattern, value in by_module.items():
        if fnmatchcase(module, pattern):
            return value
    return omega
