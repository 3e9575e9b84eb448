"""Best-of-N: N independent samples, the one the reward model scores highest."""

from __future__ import annotations

from burnish.scaling.algorithms.base import (
    SearchOptions,
    SearchResult,
    rollout,
    select_answer,
    split_budget,
)
from burnish.scaling.particles import Problem

__all__ = ["best_of_n", "sample_n"]


async def sample_n(problem: Problem, budget: int, opts: SearchOptions):
    n, _, _ = split_budget(budget)
    parts = await rollout(problem, await opts.engine.start(problem, n), opts)
    return parts, n


async def best_of_n(problem: Problem, budget: int, opts: SearchOptions) -> SearchResult:
    parts, n = await sample_n(problem, budget, opts)
    result = select_answer(parts, await opts.scores(problem, parts), opts, how="argmax")
    result.budget = {"particles": n, "sweeps": 1, "chains": 1}
    return result
