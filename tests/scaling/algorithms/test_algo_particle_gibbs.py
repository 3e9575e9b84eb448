"""Particle Gibbs: the reference trajectory's weights, and resampling triggered by the ESS."""

from __future__ import annotations

import asyncio

from burnish.scaling.algorithms import get_algorithm
from burnish.scaling.algorithms.particle_gibbs import gibbs_sweep, reference_at
from burnish.scaling.particles import Particle, Problem


def test_gibbs_reference_competes_with_its_step_t_partial_weight(script_opts) -> None:
    """A reference whose step-1 prefix scored 0.01 but whose final answer scored 0.99 must
    enter the step-1 resampling with 0.01 (a shipped implementation used the final weight)."""
    ref_parts = [
        Particle(uid=900 + t, steps=tuple(f"r{i}" for i in range(t + 1))) for t in range(3)
    ]
    reference = [(ref_parts[0], 0.01), (ref_parts[1], 0.5), (ref_parts[2], 0.99)]
    assert reference_at(reference, 0) == (ref_parts[0], 0.01)
    assert reference_at(reference, 7) == (ref_parts[2], 0.99)
    problem = Problem("p", seed=0)
    sweep = asyncio.run(gibbs_sweep(problem, 4, script_opts(), 1.0, reference))
    first = sweep.history[0]
    assert first["reference"] and first["scores"][0] == 0.01  # step-1 partial score
    assert first["scores"][1:] == [0.3, 0.3, 0.3]  # free particles' own step-1 scores
    assert first["weights"][0] < first["weights"][1]  # the reference does not dominate
    assert sweep.history[1]["scores"][0] == 0.5
    assert sweep.parts[0] is ref_parts[2]  # never dropped
    # The free slots never drew the (low-weight) reference at step 1 here, and each free
    # slot's trajectory is its own lineage.
    assert all(len(tr) >= 1 for tr in sweep.trajectories)


def test_resampling_happens_exactly_when_the_ess_is_low(script_opts) -> None:
    """With ess_threshold 0.5, a step resamples iff ESS < 0.5 N (and the flag says so);
    without a threshold, every step resamples."""

    def skewed(p: Particle) -> float:  # one particle in four is far better
        return 0.99 if p.uid % 4 == 0 else 0.05

    opts = script_opts(skewed, ess_threshold=0.5, sweeps=2)
    result = asyncio.run(get_algorithm("pg")(Problem("p", seed=1), 8, opts))
    n = result.budget["particles"]
    steps = [h for h in result.history if "ess" in h]
    assert {h["resampled"] for h in steps} == {True, False}  # both branches are taken
    assert [h["resampled"] for h in steps] == [h["ess"] < 0.5 * n for h in steps]
    opts = script_opts(skewed, sweeps=2)
    always = asyncio.run(get_algorithm("pg")(Problem("p", seed=1), 8, opts))
    assert all(h["resampled"] for h in always.history if "ess" in h)
