"""The sampling baselines, each against what it must choose: greedy, best-of-N, weighted
best-of-N, self-consistency."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from burnish.scaling.algorithms import get_algorithm
from burnish.scaling.particles import Particle, Problem


def _run(name: str, opts, budget: int = 9):
    return asyncio.run(get_algorithm(name)(Problem("p", seed=0), budget, opts))


def _answers(result) -> list[str]:
    return [r["steps"][-1].removeprefix("Answer: ") for r in result.particles]


def test_greedy_samples_one_particle_at_temperature_zero(script_opts) -> None:
    opts = script_opts()
    result = _run("greedy", opts)
    assert result.budget == {"particles": 1, "sweeps": 1, "chains": 1}
    assert len(result.particles) == 1 and set(opts.engine.temperatures) == {0.0}


def test_best_of_n_takes_the_highest_score(script_opts) -> None:
    result = _run("best_of_n", script_opts())
    assert result.answer == "1" and result.score == pytest.approx(0.95)
    assert result.score == max(r["score"] for r in result.particles)


def test_weighted_best_of_n_sums_scores_per_answer(script_opts) -> None:
    """One "2" particle scores best, but the three "0"s sum to more: the two disagree.
    (The script's 9 final particles are uids 27..35 answering 0, 1, 2, 0, 1, 2, ...)"""

    def score(p: Particle) -> float:
        last = p.steps[-1] if p.steps else ""
        if last == "Answer: 2":
            return 0.9 if p.uid % 9 == 2 else 0.05
        return 0.6 if last == "Answer: 0" else 0.1

    best = _run("best_of_n", script_opts(score))
    weighted = _run("weighted_best_of_n", script_opts(score))
    assert best.answer == "2"
    totals = Counter()
    for answer, r in zip(_answers(weighted), weighted.particles, strict=True):
        totals[answer] += r["score"]
    assert weighted.answer == max(totals, key=totals.get) == "0"


def test_self_consistency_takes_the_majority_answer(script_opts) -> None:
    result = _run("self_consistency", script_opts(), budget=7)
    counts = Counter(_answers(result))
    assert result.answer == counts.most_common(1)[0][0]
    assert counts[result.answer] > min(counts.values())  # a real majority, not a tie-break
