"""Diverse verifier tree search: N / M independent subtrees, each a greedy-by-PRM beam of
width M (keep its best partial answer, expand it into M children)."""

from __future__ import annotations

from burnish.scaling.algorithms.base import SearchOptions, SearchResult, split_budget
from burnish.scaling.algorithms.tree import tree_search
from burnish.scaling.particles import Problem

__all__ = ["dvts"]


async def dvts(problem: Problem, budget: int, opts: SearchOptions) -> SearchResult:
    n, _, _ = split_budget(budget)
    width = min(opts.beam_width, n)
    return await tree_search(problem, n, groups=max(1, n // width), keep=1, expand=width, opts=opts)
