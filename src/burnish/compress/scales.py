"""Training the four scalars of every layer (model weights frozen), and scoring a skip set."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import PreTrainedModel

from burnish.compress.data import Calibration
from burnish.models.skipping import scaled_layers
from burnish.train.step import token_loss_sum

__all__ = ["fit_scales", "get_scales", "mean_loss", "only_scales_trainable", "set_scales"]


def get_scales(model: PreTrainedModel) -> torch.Tensor:
    """[L, 4] copy of every layer's ``[b_att, s_att, b_mlp, s_mlp]``."""
    return torch.stack([m.scales.detach().clone() for m in scaled_layers(model)])


@torch.no_grad()
def set_scales(model: PreTrainedModel, scales: torch.Tensor) -> None:
    """Set every layer's scales from an [L, 4] tensor."""
    for layer, row in zip(scaled_layers(model), scales, strict=True):
        layer.scales.copy_(row)


@contextmanager
def only_scales_trainable(model: PreTrainedModel) -> Iterator[list[torch.nn.Parameter]]:
    """Freeze every weight but the scales for the block; ``requires_grad`` is put back after."""
    before = {p: p.requires_grad for p in model.parameters()}
    scales = [m.scales for m in scaled_layers(model)]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        for p in scales:
            p.requires_grad_(True)
        yield scales
    finally:
        for p, flag in before.items():
            p.requires_grad_(flag)


def fit_scales(model: PreTrainedModel, calib: Calibration, steps: int, lr: float) -> list[float]:
    """``steps`` Adam steps on the scales (one calibration batch each, in order, wrapping);
    returns the per-token loss of each step (before its update)."""
    losses: list[float] = []
    if steps <= 0:
        return losses
    with only_scales_trainable(model) as params:
        opt = torch.optim.Adam(params, lr=lr)
        for step in range(steps):
            batch = calib.batches[step % len(calib.batches)]
            loss = token_loss_sum(model, batch) / max(1, batch.loss_tokens)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
    return losses


@torch.no_grad()
def mean_loss(model: PreTrainedModel, calib: Calibration, n_batches: int | None = None) -> float:
    """Per-token next-token loss over the first ``n_batches`` batches (all by default)."""
    batches = calib.batches[: n_batches or len(calib.batches)]
    total = sum(float(token_loss_sum(model, b)) for b in batches)
    return total / max(1, sum(b.loss_tokens for b in batches))
