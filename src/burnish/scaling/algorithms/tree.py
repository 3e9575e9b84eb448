"""Step-level tree search shared by beam search and DVTS.

``groups`` independent subtrees share the budget N; each step every active particle is
extended by one step and scored, each subtree keeps its ``keep`` best active particles and
expands each into ``expand`` children (KV rows forked, not re-encoded). Finished particles
leave the tree; the answer is the best-scored finished particle.
"""

from __future__ import annotations

from burnish.scaling.algorithms.base import SearchOptions, SearchResult, select_answer
from burnish.scaling.particles import Particle, Problem

__all__ = ["tree_search"]


async def tree_search(
    problem: Problem, n: int, groups: int, keep: int, expand: int, opts: SearchOptions
) -> SearchResult:
    per_group = keep * expand
    trees: list[list[Particle]] = [await opts.engine.start(problem, per_group)]
    trees += [list(trees[0]) for _ in range(groups - 1)]
    done: list[Particle] = []
    done_scores: list[float] = []
    history = []
    for _ in range(opts.engine.step.max_steps + 1):
        active = [p for t in trees for p in t]
        if not active:
            break
        sizes = [len(t) for t in trees]
        grown = await opts.engine.extend(problem, active, opts.temperature)
        scores = await opts.scores(problem, grown)
        next_trees, at = [], 0
        entry = {"scores": [round(s, 6) for s in scores], "kept": []}
        for size in sizes:
            parts, sc = grown[at : at + size], scores[at : at + size]
            at += size
            live = []
            for p, s in zip(parts, sc, strict=True):
                if p.finished:
                    done.append(p)
                    done_scores.append(s)
                else:
                    live.append((s, p))
            live.sort(key=lambda x: -x[0])
            kept = [p for _, p in live[:keep]]
            entry["kept"].append([p.uid for p in kept])
            if kept and len(done) < n:
                next_trees.append([p for p in kept for _ in range(expand)])
        history.append(entry)
        trees = next_trees
    if not done:  # step limit hit with nothing finished: fall back to the active ones
        done = [p for t in trees for p in t]
        done_scores = await opts.scores(problem, done)
    result = select_answer(done, done_scores, opts, how="argmax")
    result.history = history
    result.budget = {"particles": n, "sweeps": 1, "chains": 1}
    return result
