"""What every search algorithm shares: its options, its result, and small helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from burnish.errors import ConfigError
from burnish.scaling.engine import Engine
from burnish.scaling.maths import resampling_probs
from burnish.scaling.particles import Particle, Problem
from burnish.scaling.reward import RewardModel, score_particles
from burnish.scaling.settings import SearchSettings

__all__ = [
    "SearchOptions",
    "SearchResult",
    "default_extract",
    "particle_record",
    "rollout",
    "select_answer",
    "split_budget",
]


def default_extract(text: str) -> str | None:
    """The value after the last ``Answer:`` line (burnish tasks' convention)."""
    for line in reversed(text.splitlines()):
        if line.strip().startswith("Answer:"):
            return line.strip()[len("Answer:") :].strip()
    return None


@dataclass(kw_only=True)
class SearchOptions(SearchSettings):
    """A search's settings (:class:`~burnish.scaling.settings.SearchSettings`) plus what it
    runs on; each algorithm reads the ones it needs.

    Attributes:
        engine: the policy engine. reward: the (process) reward model (None for the
            reward-free algorithms).
        extract: final answer of a text, for voting.
    """

    engine: Engine
    reward: RewardModel | None = None
    extract: Callable[[str], str | None] = default_extract

    def need_reward(self, algorithm: str) -> RewardModel:
        if self.reward is None:
            raise ConfigError(f"algorithm {algorithm!r} needs a reward model (--prm)")
        return self.reward

    async def scores(self, problem: Problem, parts: Sequence[Particle]) -> list[float]:
        """Aggregated reward of each particle (tokens counted on the problem)."""
        reward = self.need_reward("this search")
        return await score_particles(reward, problem.prompt, parts, self.aggregation, problem.usage)


@dataclass
class SearchResult:
    """What a search returns: the chosen answer and everything needed to audit it.

    ``particles``: final particles as records (uid, parent, steps, finish_reason, score,
    weight). ``history``: one entry per iteration (scores, resampling weights, ancestor
    indices, ESS, whether it resampled; sweep/chain where relevant). ``budget``: the
    particles x sweeps x chains actually used.
    """

    text: str
    answer: str | None
    score: float | None
    particles: list[dict[str, Any]]
    history: list[dict[str, Any]] = field(default_factory=list)
    budget: dict[str, int] = field(default_factory=dict)


def split_budget(budget: int, sweeps: int = 1, chains: int = 1) -> tuple[int, int, int]:
    """(particles, sweeps, chains) with particles x sweeps x chains <= budget.

    Sweeps and chains shrink for small budgets so that there is at least one particle each;
    ConfigError for a budget below 1.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"budget must be an integer >= 1, got {budget!r}")
    chains = max(1, min(chains, budget))
    sweeps = max(1, min(sweeps, budget // chains))
    return budget // (sweeps * chains), sweeps, chains


def particle_record(p: Particle, score: float | None = None, weight: float | None = None) -> dict:
    return {
        "uid": p.uid,
        "parent": p.parent,
        "steps": list(p.steps),
        "finished": p.finished,
        "finish_reason": p.finish_reason,
        "tokens": len(p.token_ids),
        "score": score,
        "weight": weight,
    }


async def rollout(problem: Problem, parts: list[Particle], opts: SearchOptions, temp=None):
    """Extend every particle step by step until all are finished."""
    temperature = opts.temperature if temp is None else temp
    for _ in range(opts.engine.step.max_steps + 1):
        if all(p.finished for p in parts):
            break
        parts = await opts.engine.extend(problem, parts, temperature)
    return parts


def select_answer(
    parts: Sequence[Particle],
    scores: Sequence[float] | None,
    opts: SearchOptions,
    how: str | None = None,
) -> SearchResult:
    """Pick the final answer: argmax score, score-weighted vote, or plain majority vote
    (``scores`` None). Weights recorded are softmax(logit(score) / tau) over the pool."""
    how = how or opts.selection
    weights = resampling_probs(scores, opts.tau) if scores is not None else np.full(len(parts), 1.0)
    if how == "argmax" and scores is not None:
        best = int(np.argmax(scores))
    else:
        totals: dict[str | None, float] = {}
        for p, w in zip(parts, weights, strict=True):
            ans = opts.extract(p.text)
            if ans is not None:
                totals[ans] = totals.get(ans, 0.0) + float(w)
        if totals:
            winner = max(totals, key=lambda a: totals[a])
            cands = [i for i, p in enumerate(parts) if opts.extract(p.text) == winner]
            best = max(cands, key=lambda i: weights[i])
        else:
            best = int(np.argmax(weights))
    records = [
        particle_record(p, None if scores is None else float(scores[i]), float(weights[i]))
        for i, p in enumerate(parts)
    ]
    return SearchResult(
        text=parts[best].text,
        answer=opts.extract(parts[best].text),
        score=None if scores is None else float(scores[best]),
        particles=records,
    )
