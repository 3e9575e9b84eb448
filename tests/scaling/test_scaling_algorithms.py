"""Search algorithms on a scripted engine and reward: registry, budget, particle Gibbs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from burnish.errors import ConfigError
from burnish.scaling.algorithms import ALGORITHMS, ALIASES, SearchOptions, get_algorithm
from burnish.scaling.algorithms.base import split_budget
from burnish.scaling.algorithms.particle_gibbs import gibbs_sweep, reference_at
from burnish.scaling.engine import StepConfig
from burnish.scaling.particles import Particle, Problem


class ScriptEngine:
    """Each particle writes steps "s1", "s2", ... and finishes after 3 steps ("Answer: k")."""

    step = StepConfig(max_steps=5)

    async def start(self, problem: Problem, n: int) -> list[Particle]:
        return [Particle(uid=problem.next_uid()) for _ in range(n)]

    async def extend(self, problem, particles: Sequence[Particle], temperature: float):
        out = []
        for p in particles:
            if p.finished:
                out.append(p)
                continue
            k = len(p.steps) + 1
            text = f"Answer: {p.uid % 3}" if k == 3 else f"s{k}"
            problem.usage.generated += 1
            out.append(
                p.child(
                    problem.next_uid(),
                    steps=(*p.steps, text),
                    step_logprobs=(*p.step_logprobs, -0.1),
                    finished=k == 3,
                    finish_reason="answer" if k == 3 else None,
                )
            )
        return out


class ScriptReward:
    """Score = 0.2 + 0.1 * (number of steps) ... answers "Answer: 1" score 0.95."""

    async def score(self, prompt, particles, whole=False, usage=None):
        out = []
        for p in particles:
            s = 0.95 if p.steps and p.steps[-1] == "Answer: 1" else 0.2 + 0.1 * len(p.steps)
            out.append([s] * (1 if whole else len(p.steps)))
        return out


def _opts(**kw) -> SearchOptions:
    return SearchOptions(engine=ScriptEngine(), reward=ScriptReward(), **kw)


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_every_registered_algorithm_runs_and_is_documented(name: str) -> None:
    algo = get_algorithm(name)
    assert algo.description
    result = asyncio.run(algo.run(Problem("p", seed=0), 8, _opts()))
    assert result.text.startswith("s1\ns2\nAnswer:")
    assert result.particles and all(r["finished"] for r in result.particles)
    used = result.budget
    assert used["particles"] * used["sweeps"] * used["chains"] <= 8
    if algo.needs_reward and name != "greedy":
        assert result.answer == "1"  # the reward's favourite answer wins


def test_aliases_and_unknown_algorithm() -> None:
    assert all(v in ALGORITHMS for v in ALIASES.values())
    assert get_algorithm("pf").name == "particle_filtering"
    with pytest.raises(ConfigError, match="unknown algorithm 'nope'"):
        get_algorithm("nope")


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_budget_below_one_is_a_config_error(bad) -> None:
    with pytest.raises(ConfigError, match="budget"):
        split_budget(bad)
    assert split_budget(16, sweeps=2, chains=2) == (4, 2, 2)
    assert split_budget(1, sweeps=4, chains=2) == (1, 1, 1)


def test_reward_algorithm_without_reward_is_a_config_error() -> None:
    opts = SearchOptions(engine=ScriptEngine(), reward=None)
    with pytest.raises(ConfigError, match="needs a reward model"):
        asyncio.run(get_algorithm("pf").run(Problem("p"), 4, opts))
    with pytest.raises(ConfigError, match="aggregation"):
        SearchOptions(engine=ScriptEngine(), aggregation="mean")


def test_search_is_seeded() -> None:
    runs = [
        asyncio.run(get_algorithm("pg").run(Problem("p", seed=3), 8, _opts())) for _ in range(2)
    ]
    assert runs[0].history == runs[1].history and runs[0].text == runs[1].text


def test_gibbs_reference_competes_with_its_step_t_partial_weight() -> None:
    """A reference whose step-1 prefix scored 0.01 but whose final answer scored 0.99 must
    enter the step-1 resampling with 0.01 (a shipped implementation used the final weight)."""
    ref_parts = [
        Particle(uid=900 + t, steps=tuple(f"r{i}" for i in range(t + 1))) for t in range(3)
    ]
    reference = [(ref_parts[0], 0.01), (ref_parts[1], 0.5), (ref_parts[2], 0.99)]
    assert reference_at(reference, 0) == (ref_parts[0], 0.01)
    assert reference_at(reference, 7) == (ref_parts[2], 0.99)
    problem = Problem("p", seed=0)
    sweep = asyncio.run(gibbs_sweep(problem, 4, _opts(), 1.0, reference))
    first = sweep.history[0]
    assert first["reference"] and first["scores"][0] == 0.01  # step-1 partial score
    assert first["scores"][1:] == [0.3, 0.3, 0.3]  # free particles' own step-1 scores
    assert first["weights"][0] < first["weights"][1]  # the reference does not dominate
    assert sweep.history[1]["scores"][0] == 0.5
    assert sweep.parts[0] is ref_parts[2]  # never dropped
    # The free slots never drew the (low-weight) reference at step 1 here, and each free
    # slot's trajectory is its own lineage.
    assert all(len(tr) >= 1 for tr in sweep.trajectories)
