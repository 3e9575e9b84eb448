"""Greedy decoding (pass@1): one particle at temperature 0; the budget is not used."""

from __future__ import annotations

from burnish.scaling.algorithms.base import SearchOptions, SearchResult, rollout, select_answer
from burnish.scaling.particles import Problem

__all__ = ["greedy"]


async def greedy(problem: Problem, budget: int, opts: SearchOptions) -> SearchResult:
    parts = await opts.engine.start(problem, 1)
    parts = await rollout(problem, parts, opts, temp=0.0)
    result = select_answer(parts, None, opts, how="vote")
    result.budget = {"particles": 1, "sweeps": 1, "chains": 1}
    return result
