"""The algorithm registry on the scripted engine: every entry runs, budgets, reward check."""

from __future__ import annotations

import asyncio

import pytest

from burnish.errors import ConfigError
from burnish.scaling.algorithms import ALGORITHMS, ALIASES, SearchOptions, get_algorithm
from burnish.scaling.algorithms.base import split_budget
from burnish.scaling.particles import Problem


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_every_registered_algorithm_runs_and_is_documented(name: str, script_opts) -> None:
    algo = get_algorithm(name)
    assert algo.description
    result = asyncio.run(algo(Problem("p", seed=0), 8, script_opts()))
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


def test_reward_algorithm_without_reward_is_a_config_error(script_opts) -> None:
    engine = script_opts().engine
    opts = SearchOptions(engine=engine, reward=None)
    with pytest.raises(ConfigError, match="'particle_filtering' needs a reward model"):
        asyncio.run(get_algorithm("pf")(Problem("p"), 4, opts))
    assert engine.temperatures == []  # refused before any sampling
    with pytest.raises(ConfigError, match="aggregation"):
        SearchOptions(engine=engine, aggregation="mean")


def test_search_is_seeded(script_opts) -> None:
    runs = [
        asyncio.run(get_algorithm("pg")(Problem("p", seed=3), 8, script_opts())) for _ in range(2)
    ]
    assert runs[0].history == runs[1].history and runs[0].text == runs[1].text
