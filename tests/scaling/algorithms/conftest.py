"""A scripted engine and reward for the search algorithms: known answers, known scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from burnish.scaling.algorithms import SearchOptions
from burnish.scaling.engine import StepConfig
from burnish.scaling.particles import Particle, Problem


class ScriptEngine:
    """Each particle writes steps "s1", "s2", then "Answer: k" (k = its uid mod 3) and is
    finished. Records the temperatures it was asked to sample at."""

    step = StepConfig(max_steps=5)

    def __init__(self) -> None:
        self.temperatures: list[float] = []

    async def start(self, problem: Problem, n: int) -> list[Particle]:
        return [Particle(uid=problem.next_uid()) for _ in range(n)]

    async def extend(self, problem, particles: Sequence[Particle], temperature: float):
        self.temperatures.append(temperature)
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


def favour(answer: str, high: float = 0.95) -> Callable[[Particle], float]:
    """Score ``high`` for a finished particle answering ``answer``, else 0.2 + 0.1 * steps."""

    def score(p: Particle) -> float:
        if p.steps and p.steps[-1] == f"Answer: {answer}":
            return high
        return 0.2 + 0.1 * len(p.steps)

    return score


class ScriptReward:
    """Every step of a particle gets ``score(particle)``."""

    def __init__(self, score: Callable[[Particle], float] = favour("1")) -> None:
        self.score_of = score

    async def score(self, prompt, particles, whole=False, usage=None):
        return [[self.score_of(p)] * (1 if whole else len(p.steps)) for p in particles]


@pytest.fixture
def script_opts() -> Callable[..., SearchOptions]:
    """``script_opts(score=None, **search_settings)`` -> SearchOptions on the script."""

    def make(score: Callable[[Particle], float] | None = None, **kw) -> SearchOptions:
        reward = ScriptReward(score) if score is not None else ScriptReward()
        return SearchOptions(engine=ScriptEngine(), reward=reward, **kw)

    return make
