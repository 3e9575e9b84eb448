"""Parallel tempering: chains at doubling temperatures, neighbour swaps alternating pairs."""

from __future__ import annotations

import asyncio

from burnish.scaling.algorithms import get_algorithm
from burnish.scaling.particles import Problem


def test_chains_sweeps_and_alternating_swaps(script_opts) -> None:
    opts = script_opts(sweeps=2, chains=3)
    result = asyncio.run(get_algorithm("pt")(Problem("p", seed=0), 12, opts))
    assert result.budget == {"particles": 2, "sweeps": 2, "chains": 3}
    swaps = [(h["sweep"], h["swap"]) for h in result.history if "swap" in h]
    assert swaps == [(0, [0, 1]), (1, [1, 2])]  # even pairs, then odd pairs
    assert {h["chain"] for h in result.history if "chain" in h} == {0, 1, 2}
    assert result.answer == "1"
