"""Particle Gibbs: T sweeps of particle filtering around a reference trajectory.

Sweep 1 is plain particle filtering. Afterwards a reference trajectory is drawn from the final
particles by softmax(logit(final score) / tau). In the next sweep the reference occupies slot 0
and is never dropped; at step t it competes with its **step-t partial** score (what its prefix
scored at step t in its own sweep), not with its final score, and the N - 1 free particles
resample from all N, so the reference's prefix can be cloned. Budget = N x T.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from burnish.scaling.algorithms.base import (
    SearchOptions,
    SearchResult,
    select_answer,
    split_budget,
)
from burnish.scaling.maths import effective_sample_size, resample, resampling_probs
from burnish.scaling.particles import Particle, Problem

__all__ = ["Sweep", "draw_reference", "gibbs_sweep", "particle_gibbs", "reference_at"]

Trajectory = list[tuple[Particle, float]]  # (particle after step t, its score at step t)


@dataclass
class Sweep:
    """Final particles of one sweep with their scores, trajectories and history."""

    parts: list[Particle]
    scores: list[float]
    trajectories: list[Trajectory]
    history: list[dict] = field(default_factory=list)


def reference_at(reference: Trajectory, t: int) -> tuple[Particle, float]:
    """The reference's particle and partial score at step t (its last one once it ended)."""
    return reference[min(t, len(reference) - 1)]


def draw_reference(sweep: Sweep, tau: float, problem: Problem) -> Trajectory:
    """A trajectory of the sweep drawn by softmax(logit(final score) / tau)."""
    probs = resampling_probs(sweep.scores, tau)
    i = int(resample(probs, 1, problem.rng, "multinomial")[0])
    return sweep.trajectories[i]


async def gibbs_sweep(
    problem: Problem,
    n: int,
    opts: SearchOptions,
    tau: float,
    reference: Trajectory | None = None,
) -> Sweep:
    """One conditional particle-filter sweep with N particles (slot 0 = reference if given)."""
    n_free = n - 1 if reference else n
    free = await opts.engine.start(problem, n_free) if n_free else []
    trajs: list[Trajectory] = [[] for _ in free]
    history: list[dict] = []
    parts: list[Particle] = []
    scores: list[float] = []
    for t in range(opts.engine.step.max_steps + 1):
        grown = await opts.engine.extend(problem, free, opts.temperature) if free else []
        grown_scores = await opts.scores(problem, grown) if grown else []
        for i, (p, s) in enumerate(zip(grown, grown_scores, strict=True)):
            if not trajs[i] or trajs[i][-1][0].uid != p.uid:
                trajs[i] = [*trajs[i], (p, s)]
        parts, scores, all_trajs = list(grown), list(grown_scores), list(trajs)
        if reference:
            ref_p, ref_s = reference_at(reference, t)
            parts, scores = [ref_p, *parts], [ref_s, *scores]
            all_trajs = [reference[: t + 1], *all_trajs]
        ref_done = reference is None or t >= len(reference) - 1
        if ref_done and all(p.finished for p in parts):
            history.append({"step": t, "scores": [round(s, 6) for s in scores]})
            return Sweep(parts, scores, all_trajs, history)
        probs = resampling_probs(scores, tau)
        ess = effective_sample_size(probs)
        entry = {
            "step": t,
            "scores": [round(s, 6) for s in scores],
            "weights": [round(float(x), 6) for x in probs],
            "ess": round(ess, 4),
            "resampled": False,
            "reference": reference is not None,
        }
        if n_free and (opts.ess_threshold is None or ess < opts.ess_threshold * n):
            idx = resample(probs, n_free, problem.rng, opts.resampling).tolist()
            entry.update(resampled=True, ancestors=idx)
            free = [parts[i] for i in idx]
            trajs = [list(all_trajs[i]) for i in idx]
        else:
            free = parts[1:] if reference else parts
            trajs = all_trajs[1:] if reference else all_trajs
        history.append(entry)
    return Sweep(parts, scores, all_trajs, history)


async def particle_gibbs(problem: Problem, budget: int, opts: SearchOptions) -> SearchResult:
    n, sweeps, _ = split_budget(budget, opts.sweeps)
    reference: Trajectory | None = None
    pool: list[Particle] = []
    pool_scores: list[float] = []
    history: list[dict] = []
    for s in range(sweeps):
        sweep = await gibbs_sweep(problem, n, opts, opts.tau, reference)
        history += [{"sweep": s, **h} for h in sweep.history]
        pool += sweep.parts
        pool_scores += sweep.scores
        reference = draw_reference(sweep, opts.tau, problem)
    result = select_answer(pool, pool_scores, opts)
    result.history = history
    result.budget = {"particles": n, "sweeps": sweeps, "chains": 1}
    return result
