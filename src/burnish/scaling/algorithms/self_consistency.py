"""Self-consistency: N samples, majority vote over final answers (no reward model)."""

from __future__ import annotations

from burnish.scaling.algorithms.base import SearchOptions, SearchResult, select_answer
from burnish.scaling.algorithms.best_of_n import sample_n
from burnish.scaling.particles import Problem

__all__ = ["self_consistency"]


async def self_consistency(problem: Problem, budget: int, opts: SearchOptions) -> SearchResult:
    parts, n = await sample_n(problem, budget, opts)
    result = select_answer(parts, None, opts, how="vote")
    result.budget = {"particles": n, "sweeps": 1, "chains": 1}
    return result
