"""Particle filtering (Rollout Roulette, Puri et al. 2025).

N particles; each iteration extends every unfinished particle by one step, scores all with the
PRM, weights w = logit(score) (latest score, no accumulation), resampling probabilities
softmax(w / tau), then resamples N ancestors (multinomial or systematic; optionally only when
ESS < threshold * N). Finished particles stay in the pool with their final score and may be
cloned. Stops when every particle is finished; answer = argmax score or weighted vote.
"""

from __future__ import annotations

from burnish.scaling.algorithms.base import (
    SearchOptions,
    SearchResult,
    select_answer,
    split_budget,
)
from burnish.scaling.maths import effective_sample_size, resample, resampling_probs
from burnish.scaling.particles import Particle, Problem

__all__ = ["filter_step", "particle_filtering"]


def filter_step(
    problem: Problem, parts: list[Particle], scores: list[float], opts: SearchOptions, n: int
) -> tuple[list[Particle], list[float], dict]:
    """One resampling decision: (particles, scores, history entry) after resampling."""
    probs = resampling_probs(scores, opts.tau)
    ess = effective_sample_size(probs)
    entry = {
        "scores": [round(s, 6) for s in scores],
        "weights": [round(float(p), 6) for p in probs],
        "ess": round(ess, 4),
        "resampled": False,
        "ancestors": list(range(len(parts))),
    }
    if opts.ess_threshold is None or ess < opts.ess_threshold * n:
        idx = resample(probs, n, problem.rng, opts.resampling).tolist()
        parts, scores = [parts[i] for i in idx], [scores[i] for i in idx]
        entry.update(resampled=True, ancestors=idx)
    return parts, scores, entry


async def particle_filtering(problem: Problem, budget: int, opts: SearchOptions) -> SearchResult:
    n, _, _ = split_budget(budget)
    parts = await opts.engine.start(problem, n)
    scores: list[float] = [0.5] * n
    history = []
    for _ in range(opts.engine.step.max_steps + 1):
        if all(p.finished for p in parts):
            break
        parts = await opts.engine.extend(problem, parts, opts.temperature)
        scores = await opts.scores(problem, parts)
        if all(p.finished for p in parts):
            history.append({"scores": [round(s, 6) for s in scores], "resampled": False})
            break
        parts, scores, entry = filter_step(problem, parts, scores, opts, n)
        history.append(entry)
    result = select_answer(parts, scores, opts)
    result.history = history
    result.budget = {"particles": n, "sweeps": 1, "chains": 1}
    return result
