"""Parallel tempering: M particle-Gibbs chains at resampling temperatures tau * 2^m, with
Metropolis-Hastings swaps of reference trajectories between neighbouring chains after every
sweep. Chain m targets exp(w / tau_m), w = logit(final score); a swap of chains i, j is
accepted with probability min(1, exp((1/tau_i - 1/tau_j)(w_j - w_i))). Hot chains explore,
cold chains exploit; swaps carry good references down. Budget = N x T x M.
"""

from __future__ import annotations

import asyncio

from burnish.scaling.algorithms.base import (
    SearchOptions,
    SearchResult,
    select_answer,
    split_budget,
)
from burnish.scaling.algorithms.particle_gibbs import Trajectory, draw_reference, gibbs_sweep
from burnish.scaling.maths import log_weights, metropolis_swap_accept
from burnish.scaling.particles import Particle, Problem

__all__ = ["parallel_tempering"]


async def parallel_tempering(problem: Problem, budget: int, opts: SearchOptions) -> SearchResult:
    n, sweeps, chains = split_budget(budget, opts.sweeps, opts.chains)
    taus = [opts.tau * 2.0**m for m in range(chains)]
    refs: list[Trajectory | None] = [None] * chains
    pool: list[Particle] = []
    pool_scores: list[float] = []
    history: list[dict] = []
    for s in range(sweeps):
        results = await asyncio.gather(
            *(gibbs_sweep(problem, n, opts, taus[m], refs[m]) for m in range(chains))
        )
        for m, sweep in enumerate(results):
            history += [{"sweep": s, "chain": m, **h} for h in sweep.history]
            pool += sweep.parts
            pool_scores += sweep.scores
            refs[m] = draw_reference(sweep, taus[m], problem)
        for i in range(s % 2, chains - 1, 2):  # alternate even/odd neighbour pairs
            wi = float(log_weights([refs[i][-1][1]])[0])
            wj = float(log_weights([refs[i + 1][-1][1]])[0])
            ok = metropolis_swap_accept(wi, wj, taus[i], taus[i + 1], float(problem.rng.random()))
            history.append({"sweep": s, "swap": [i, i + 1], "accepted": ok})
            if ok:
                refs[i], refs[i + 1] = refs[i + 1], refs[i]
    result = select_answer(pool, pool_scores, opts)
    result.history = history
    result.budget = {"particles": n, "sweeps": sweeps, "chains": chains}
    return result
