"""Beam search and DVTS over the shared tree search: how many they keep and expand."""

from __future__ import annotations

import asyncio

from burnish.scaling.algorithms import get_algorithm
from burnish.scaling.particles import Problem


def _run(name: str, opts, budget: int = 8):
    return asyncio.run(get_algorithm(name)(Problem("p", seed=0), budget, opts))


def test_beam_search_keeps_n_over_width_beams(script_opts) -> None:
    result = _run("beam_search", script_opts(beam_width=4))
    first = result.history[0]
    assert len(first["scores"]) == 8  # N = 8 children at the first step
    assert [len(k) for k in first["kept"]] == [2]  # one tree keeps N / M = 2 beams
    assert result.answer == "1"


def test_dvts_keeps_one_beam_in_each_of_n_over_width_subtrees(script_opts) -> None:
    result = _run("dvts", script_opts(beam_width=4))
    first = result.history[0]
    assert len(first["scores"]) == 8
    assert [len(k) for k in first["kept"]] == [1, 1]  # N / M = 2 subtrees, 1 beam each
    assert result.answer == "1"
