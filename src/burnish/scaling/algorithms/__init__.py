"""Search algorithms, one file each, and the explicit registry ``ALGORITHMS``.

Every algorithm is ``async run(problem, budget, opts) -> SearchResult``; budget = particles x
sweeps x chains.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from burnish.errors import ConfigError
from burnish.scaling.algorithms.base import SearchOptions, SearchResult, split_budget
from burnish.scaling.algorithms.beam_search import beam_search
from burnish.scaling.algorithms.best_of_n import best_of_n
from burnish.scaling.algorithms.dvts import dvts
from burnish.scaling.algorithms.greedy import greedy
from burnish.scaling.algorithms.parallel_tempering import parallel_tempering
from burnish.scaling.algorithms.particle_filtering import particle_filtering
from burnish.scaling.algorithms.particle_gibbs import particle_gibbs
from burnish.scaling.algorithms.self_consistency import self_consistency
from burnish.scaling.algorithms.weighted_best_of_n import weighted_best_of_n
from burnish.scaling.particles import Problem

__all__ = [
    "ALGORITHMS",
    "ALIASES",
    "Algorithm",
    "SearchOptions",
    "SearchResult",
    "get_algorithm",
    "split_budget",
]


@dataclass(frozen=True)
class Algorithm:
    """A registered search: its function, whether it needs a reward model, one-line help."""

    name: str
    run: Callable[[Problem, int, SearchOptions], Awaitable[SearchResult]]
    needs_reward: bool
    description: str

    async def __call__(self, problem: Problem, budget: int, opts: SearchOptions) -> SearchResult:
        """Run the search; ConfigError first if it needs a reward model and ``opts`` has none
        (the one place that check is made)."""
        if self.needs_reward:
            opts.need_reward(self.name)
        return await self.run(problem, budget, opts)


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in [
        Algorithm("greedy", greedy, False, "one greedy sample (pass@1); ignores the budget"),
        Algorithm("best_of_n", best_of_n, True, "N samples, highest reward"),
        Algorithm(
            "weighted_best_of_n",
            weighted_best_of_n,
            True,
            "N samples, answer with the largest summed reward",
        ),
        Algorithm("self_consistency", self_consistency, False, "N samples, majority vote"),
        Algorithm("beam_search", beam_search, True, "PRM beam search, N/M beams x M children"),
        Algorithm("dvts", dvts, True, "diverse verifier tree search: N/M subtrees of width M"),
        Algorithm(
            "particle_filtering",
            particle_filtering,
            True,
            "particle filtering with PRM weights (Rollout Roulette)",
        ),
        Algorithm(
            "particle_gibbs",
            particle_gibbs,
            True,
            "particle Gibbs: sweeps around a reference trajectory",
        ),
        Algorithm(
            "parallel_tempering",
            parallel_tempering,
            True,
            "tempered particle-Gibbs chains with Metropolis-Hastings swaps",
        ),
    ]
}

ALIASES = {
    "pf": "particle_filtering",
    "pg": "particle_gibbs",
    "pt": "parallel_tempering",
    "bon": "best_of_n",
    "wbon": "weighted_best_of_n",
    "sc": "self_consistency",
    "beam": "beam_search",
}


def get_algorithm(name: str) -> Algorithm:
    """The algorithm registered as ``name`` (or a short alias); ConfigError if unknown."""
    key = ALIASES.get(name, name)
    if key not in ALGORITHMS:
        known = ", ".join([*ALGORITHMS, *(f"{k} ({v})" for k, v in ALIASES.items())])
        raise ConfigError(f"unknown algorithm {name!r}; known: {known}")
    return ALGORITHMS[key]
