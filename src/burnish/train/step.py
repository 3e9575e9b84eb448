"""The pieces of one optimizer step, shared by every recipe (SFT, OSFT, ...).

The loss of a step is the mean cross-entropy over *all* loss tokens of the effective batch
(every minibatch of every rank), not a mean of minibatch means: each minibatch contributes
``sum(CE) / total_loss_tokens`` and gradients are summed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from burnish.data.packing import PackedBatch
from burnish.data.tokenize import IGNORE_INDEX
from burnish.train.distributed import DistInfo, all_reduce_max, all_reduce_sum

__all__ = [
    "build_optimizer",
    "build_scheduler",
    "lr_lambda",
    "sync_gradients",
    "token_loss_sum",
    "train_step",
]


# Config fields with which a causal LM's forward changes the LM head's output (scaling or
# soft-capping logits); a model that sets any of them takes the plain path through its forward.
_LOGIT_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "logits_scaling",
    "output_multiplier",
    "lm_head_multiplier",
)


def _is_sharded(model: nn.Module) -> bool:
    return any(type(p).__name__ == "DTensor" for p in model.parameters())


def _split_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """(backbone, head) when ``model(...).logits == head(backbone(...).last_hidden_state)``.

    None where that is not known to hold: logits transformed by the config, a head with a
    custom forward, no base model, or FSDP-sharded parameters (its hooks sit on the root's
    forward, which the split would bypass).
    """
    cfg = getattr(model, "config", None)
    get_head = getattr(model, "get_output_embeddings", None)
    backbone = getattr(model, "base_model", None)
    if cfg is None or get_head is None or backbone is None or backbone is model:
        return None
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    if any(getattr(text_cfg, k, None) not in (None, 1.0) for k in _LOGIT_TRANSFORMS):
        return None
    head = get_head()
    if type(head) is not nn.Linear or _is_sharded(model):
        return None
    return backbone, head


def label_logits(model: nn.Module, batch: PackedBatch) -> torch.Tensor:
    """Logits [N, V] at the batch's N labelled positions (row-major), fp32.

    Where the model is a backbone followed by a plain linear head, the head runs only on
    those N positions ([N, C] -> [N, V]) instead of all R * L: the same logits to rounding,
    without the [R, L, V] tensor (the head of a 49k vocabulary is a fifth of a small model's
    FLOPs, and most positions of chat data are prompt tokens).
    """
    inputs = {
        "input_ids": batch.input_ids,
        "position_ids": batch.position_ids,
        "attention_mask": batch.attention_mask,
        "use_cache": False,
    }
    keep = batch.shift_labels != IGNORE_INDEX  # [R, L]
    split = _split_head(model)
    if split is None:
        return model(**inputs).logits[keep].float()  # [N, V]
    backbone, head = split
    hidden = backbone(**inputs).last_hidden_state  # [R, L, C]
    return head(hidden[keep]).float()  # [N, V]


def token_loss_sum(model: nn.Module, batch: PackedBatch) -> torch.Tensor:
    """Summed next-token cross-entropy over the batch's loss tokens (fp32 logits, computed
    only where there is a label: :func:`label_logits`)."""
    labels = batch.shift_labels[batch.shift_labels != IGNORE_INDEX]  # [N]
    return F.cross_entropy(label_logits(model, batch), labels, reduction="sum")


def build_optimizer(
    params: list[nn.Parameter], lr: float, betas: tuple[float, float], weight_decay: float
) -> torch.optim.AdamW:
    """AdamW; decoupled weight decay (0 by default, as in the SFT study).

    Uses the fused kernel (one pass over each parameter's state, the same update to rounding)
    where torch has it: plain (unsharded) floating-point parameters on CPU or CUDA.
    """
    fused = bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() and type(p).__name__ != "DTensor"
        for p in params
    )
    return torch.optim.AdamW(
        params, lr=lr, betas=betas, weight_decay=weight_decay, fused=fused or None
    )


def lr_lambda(kind: str, warmup: int, total: int) -> Callable[[int], float]:
    """Multiplier of the peak LR at step s: linear warmup, then constant/cosine/linear decay."""

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant" or total <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - progress

    return f


def build_scheduler(
    optimizer: torch.optim.Optimizer, kind: str, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(kind, warmup, total))


def sync_gradients(params: list[nn.Parameter], info: DistInfo) -> None:
    """Sum gradients over ranks (replicated training; FSDP reduces its own)."""
    if not info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    all_reduce_sum(flat, info)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _empty_batch(device: torch.device) -> PackedBatch:
    # One padding token with no label: a zero-loss forward/backward for a rank with no work,
    # so every rank runs the same number of FSDP collectives.
    one = torch.zeros((1, 1), dtype=torch.long, device=device)
    labels = torch.full((1, 1), IGNORE_INDEX, dtype=torch.long, device=device)
    return PackedBatch(one, one.clone(), labels, None, 0, 0)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    minibatches: list[PackedBatch],
    total_loss_tokens: int,
    grad_clip: float,
    info: DistInfo,
    sharded: bool = False,
    after_backward: Callable[[], None] | None = None,
    loss_of: Callable[[Any], torch.Tensor] | None = None,
) -> tuple[float, float]:
    """Accumulate gradients over this rank's minibatches, sync, clip, step.

    Args:
        minibatches: this rank's share of the effective batch (may be empty on a rank).
        total_loss_tokens: loss tokens of the whole effective batch over all ranks.
        sharded: the model is FSDP2-sharded (it reduces gradients itself, as a mean over
            ranks, so each rank's loss is scaled by the world size to make it a sum); else
            replicated ranks have their gradients summed here.
        after_backward: hook run on full gradients before clipping (e.g. OSFT projection).
        loss_of: a minibatch's share of the step's loss, for minibatches that are not
            token-loss batches (DPO's pairs); default: its summed token loss over
            ``total_loss_tokens``.
    Returns:
        (loss, grad_norm): the true per-token mean loss of the step and the pre-clip norm.
    """
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    work = list(minibatches)
    if sharded:
        n = int(all_reduce_max(torch.tensor([len(work)], device=device), info))
        work += [_empty_batch(device)] * (n - len(work))
    scale = info.world_size if sharded else 1
    for i, mb in enumerate(work):
        if sharded:  # reduce-scatter once, after the last microbatch
            model.set_requires_gradient_sync(i == len(work) - 1)
        if loss_of is not None and i < len(minibatches):
            loss = loss_of(mb)
        else:  # a token-loss batch, or a rank's zero-loss padding batch
            loss = token_loss_sum(model, mb) / total_loss_tokens
        (loss * scale).backward()
        loss_sum += loss.detach().double()
    if not sharded:
        for p in params:  # ranks with no minibatch still take part in the reduction
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        sync_gradients(params, info)
    if after_backward is not None:
        after_backward()
    max_norm = grad_clip if grad_clip > 0 else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    if hasattr(grad_norm, "full_tensor"):  # DTensor under FSDP
        grad_norm = grad_norm.full_tensor()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    all_reduce_sum(loss_sum, info)
    return float(loss_sum), float(grad_norm)
