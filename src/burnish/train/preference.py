"""Preference-tuning losses (DPO sigmoid / IPO / hinge, SimPO) and per-sequence log-probs from
packed rows: the pure tensor functions a DPO recipe is built on.

Conventions follow TRL's DPOTrainer (v0.2x): with log-ratios ``c = log pi(y_w) - log ref(y_w)``
and ``r = log pi(y_l) - log ref(y_l)`` (sums over response tokens), ``d = c - r``:

- sigmoid (DPO): ``-(1 - eps) logsigmoid(beta d) - eps logsigmoid(-beta d)`` (eps: label
  smoothing, 0 by default);
- hinge: ``relu(1 - beta d)``;
- IPO: ``(c / |y_w| - r / |y_l| - 1 / (2 beta))^2``, the log-ratios averaged per response
  token as TRL does (the IPO authors' normalised form);
- SimPO (reference-free): ``-logsigmoid(beta (m_w - m_l) - gamma)`` with ``m`` the mean
  per-token log-prob of a response under the policy.

Rewards, as TRL logs them: ``rewards/chosen = beta c``, ``rewards/rejected = beta r`` (SimPO:
``beta m``), margins their difference, accuracies the share with chosen > rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from burnish.data.packing import PackedBatch
from burnish.data.tokenize import IGNORE_INDEX
from burnish.errors import ConfigError
from burnish.train.step import label_logits

__all__ = [
    "DPO_LOSSES",
    "PreferenceLoss",
    "dpo_loss",
    "packed_sequence_logps",
    "simpo_loss",
]

DPO_LOSSES = ("sigmoid", "ipo", "hinge")


@dataclass
class PreferenceLoss:
    """Per-pair losses [P] and the rewards TRL logs [P] each."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor

    def metrics(self) -> dict[str, float]:
        """TRL's metric names, averaged over the pairs."""
        margins = self.chosen_rewards - self.rejected_rewards
        return {
            "loss": float(self.losses.mean()),
            "rewards/chosen": float(self.chosen_rewards.mean()),
            "rewards/rejected": float(self.rejected_rewards.mean()),
            "rewards/margins": float(margins.mean()),
            "rewards/accuracies": float((margins > 0).float().mean()),
        }


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    kind: str = "sigmoid",
    label_smoothing: float = 0.0,
    chosen_tokens: torch.Tensor | None = None,
    rejected_tokens: torch.Tensor | None = None,
) -> PreferenceLoss:
    """DPO-family losses from summed response log-probs [P] (see the module doc); IPO needs
    the response lengths ``chosen_tokens`` / ``rejected_tokens`` [P]."""
    if kind not in DPO_LOSSES:
        raise ConfigError(f"unknown DPO loss {kind!r}; choose one of {', '.join(DPO_LOSSES)}")
    if beta <= 0:
        raise ConfigError(f"beta must be > 0, got {beta}")
    c = policy_chosen - ref_chosen
    r = policy_rejected - ref_rejected
    d = c - r
    if kind == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * d) - label_smoothing * F.logsigmoid(
            -beta * d
        )
    elif kind == "hinge":
        losses = torch.relu(1 - beta * d)
    else:
        if chosen_tokens is None or rejected_tokens is None:
            raise ConfigError("the IPO loss needs the response lengths (tokens per response)")
        ipo = c / chosen_tokens.clamp(min=1) - r / rejected_tokens.clamp(min=1)
        losses = (ipo - 1 / (2 * beta)) ** 2
    return PreferenceLoss(losses, beta * c.detach(), beta * r.detach())


def simpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    chosen_tokens: torch.Tensor,
    rejected_tokens: torch.Tensor,
    beta: float = 2.0,
    gamma: float = 0.5,
) -> PreferenceLoss:
    """SimPO from summed policy log-probs [P] and response lengths [P] (no reference model).
    Defaults: beta 2.0 and gamma 0.5 (gamma / beta = 0.25), as in the SimPO paper's setups."""
    if beta <= 0:
        raise ConfigError(f"beta must be > 0, got {beta}")
    mw = policy_chosen / chosen_tokens.clamp(min=1)
    ml = policy_rejected / rejected_tokens.clamp(min=1)
    losses = -F.logsigmoid(beta * (mw - ml) - gamma)
    return PreferenceLoss(losses, beta * mw.detach(), beta * ml.detach())


def packed_sequence_logps(
    model: torch.nn.Module, batch: PackedBatch, rows: list[list[int]], lengths: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence sums of label log-probs under ``model`` from one packed batch, and label
    counts.

    ``rows`` and ``lengths`` are what :func:`burnish.data.packing.collate_packed` built the
    batch from (row r holds the sequences ``rows[r]`` back to back). Returns
    ``(sums [S], tokens [S])`` indexed by sequence (S = ``len(lengths)``; a sequence in no
    row gets 0 and 0). Differentiable in the model's parameters.
    """
    R, L = batch.shift_labels.shape
    seq = torch.full((R, L), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        t = 0
        for i in row:
            seq[r, t : t + lengths[i]] = i
            t += lengths[i]
    keep = batch.shift_labels != IGNORE_INDEX  # [R, L]
    ids = seq.to(keep.device)[keep]  # [N] the sequence of each labelled slot
    logp = torch.log_softmax(label_logits(model, batch), dim=-1)  # [N, V]
    token = logp.gather(1, batch.shift_labels[keep][:, None])[:, 0]  # [N]
    n = len(lengths)
    sums = torch.zeros(n, dtype=token.dtype, device=token.device).index_add(0, ids, token)
    ones = torch.ones_like(ids)
    counts = torch.zeros(n, dtype=torch.long, device=token.device).index_add(0, ids, ones)
    return sums, counts
