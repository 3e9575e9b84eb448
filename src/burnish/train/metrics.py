"""Per-step metrics and the early-signal summary of the SFT study.

Runs with lower gradient norm and higher loss over the first steps tended to end better
(sft.md, finding 2), so every run writes the mean and spread of both over its first k steps,
which lets a sweep be ranked long before it ends.
"""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["early_signals"]


def early_signals(rows: list[dict[str, Any]], k: int) -> dict[str, float | int]:
    """Summarise grad norm and loss over the first ``k`` logged steps."""
    first = [r for r in rows if "loss" in r][:k]
    if not first:
        return {"steps": 0}
    losses = [r["loss"] for r in first]
    norms = [r["grad_norm"] for r in first]
    return {
        "steps": len(first),
        "mean_loss": statistics.fmean(losses),
        "mean_grad_norm": statistics.fmean(norms),
        "std_grad_norm": statistics.pstdev(norms),
        "max_grad_norm": max(norms),
        "loss_drop": losses[0] - losses[-1],
    }
