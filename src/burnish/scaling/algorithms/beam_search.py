"""Beam search with a PRM: keep the N / M best partial answers, expand each into M."""

from __future__ import annotations

from burnish.scaling.algorithms.base import SearchOptions, SearchResult, split_budget
from burnish.scaling.algorithms.tree import tree_search
from burnish.scaling.particles import Problem

__all__ = ["beam_search"]


async def beam_search(problem: Problem, budget: int, opts: SearchOptions) -> SearchResult:
    n, _, _ = split_budget(budget)
    width = min(opts.beam_width, n)
    return await tree_search(problem, n, groups=1, keep=max(1, n // width), expand=width, opts=opts)
