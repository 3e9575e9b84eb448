"""Weighted best-of-N: N samples; the final answer whose samples' rewards sum highest."""

from __future__ import annotations

from burnish.scaling.algorithms.base import SearchOptions, SearchResult, select_answer
from burnish.scaling.algorithms.best_of_n import sample_n
from burnish.scaling.particles import Problem

__all__ = ["weighted_best_of_n"]


async def weighted_best_of_n(problem: Problem, budget: int, opts: SearchOptions) -> SearchResult:
    parts, n = await sample_n(problem, budget, opts)
    scores = await opts.scores(problem, parts)
    # Vote weights are the raw scores (not a softmax), as in weighted best-of-N.
    result = select_answer(parts, scores, opts, how="vote")
    totals: dict = {}
    for p, s in zip(parts, scores, strict=True):
        a = opts.extract(p.text)
        if a is not None:
            totals[a] = totals.get(a, 0.0) + s
    if totals:
        winner = max(totals, key=lambda a: totals[a])
        best = max(
            (i for i, p in enumerate(parts) if opts.extract(p.text) == winner),
            key=lambda i: scores[i],
        )
        result.text, result.answer, result.score = parts[best].text, winner, scores[best]
    result.budget = {"particles": n, "sweeps": 1, "chains": 1}
    return result
