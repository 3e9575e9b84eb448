"""Particle filtering: one resampling decision (filter_step) and the whole filter."""

from __future__ import annotations

import asyncio

import pytest

from burnish.scaling.algorithms import get_algorithm
from burnish.scaling.algorithms.particle_filtering import filter_step
from burnish.scaling.particles import Particle, Problem


def _parts(n: int) -> list[Particle]:
    return [Particle(uid=i, steps=(f"s{i}",)) for i in range(n)]


def test_resamples_every_step_without_a_threshold(script_opts) -> None:
    """One dominant particle (weights softmax(logit / tau)) is drawn for every slot."""
    parts = _parts(4)
    out, scores, entry = filter_step(
        Problem("p", seed=0), parts, [0.999, 0.001, 0.001, 0.001], script_opts(tau=0.1), 4
    )
    assert entry["resampled"] and entry["ancestors"] == [0, 0, 0, 0]
    assert [p.uid for p in out] == [0, 0, 0, 0] and scores == [0.999] * 4
    assert entry["weights"][0] > 0.999 and entry["ess"] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("scores", "resampled"), [([0.5, 0.5, 0.5, 0.5], False), ([0.99, 0.05, 0.05, 0.05], True)]
)
def test_ess_threshold_decides_when_to_resample(script_opts, scores, resampled) -> None:
    """ESS < threshold x N resamples; equal weights (ESS = N) keep the particles as they are."""
    parts = _parts(4)
    out, kept, entry = filter_step(
        Problem("p", seed=0), parts, scores, script_opts(ess_threshold=0.5), 4
    )
    assert entry["resampled"] is resampled
    assert (entry["ess"] < 0.5 * 4) is resampled
    if not resampled:
        assert out == parts and kept == scores and entry["ancestors"] == [0, 1, 2, 3]


def test_systematic_resampling_keeps_expected_counts(script_opts) -> None:
    """Systematic resampling gives each particle floor or ceil of N x its weight."""
    parts = _parts(4)
    opts = script_opts(resampling="systematic")
    _, _, entry = filter_step(Problem("p", seed=3), parts, [0.9, 0.9, 0.1, 0.1], opts, 8)
    counts = [entry["ancestors"].count(i) for i in range(4)]
    expected = [8 * w for w in entry["weights"]]
    assert sum(counts) == 8
    assert all(int(e) <= c <= int(e) + 1 for c, e in zip(counts, expected, strict=True))


def test_the_filter_follows_the_reward(script_opts) -> None:
    result = asyncio.run(get_algorithm("pf")(Problem("p", seed=0), 8, script_opts()))
    assert result.answer == "1" and result.score == pytest.approx(0.95)
    assert all(h["resampled"] for h in result.history if "ess" in h)
