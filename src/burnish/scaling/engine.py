"""The engine interface: start particles for a prompt, extend partial answers by one step.

Engines are async so that searches over many problems run concurrently; the in-process engine
batches all their requests into one forward pass per token, the OpenAI-compatible engine sends
them to a server concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from burnish.errors import BurnishError, ConfigError
from burnish.scaling.particles import Particle, Problem

__all__ = ["Engine", "EngineError", "StepConfig", "extend_each", "finish_reason"]


class EngineError(BurnishError, ConnectionError):
    """An inference endpoint failed (unreachable, timed out, bad reply) after retries;
    ``status`` is the HTTP status when the server refused the request, and ``detail`` its
    error message."""

    def __init__(self, message: str, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class StepConfig:
    """What a step is and when a particle is finished.

    Attributes:
        delimiter: text that ends a step ("\\n" for burnish's line-per-step tasks).
        answer_marker: a step containing it is the last one.
        max_steps: a particle with this many steps is finished.
        max_step_tokens: a step longer than this is cut and the particle finished.
    """

    delimiter: str = "\n"
    answer_marker: str = "Answer:"
    max_steps: int = 12
    max_step_tokens: int = 48

    def __post_init__(self) -> None:
        if not self.delimiter:
            raise ConfigError("step delimiter must be non-empty")
        if self.max_steps < 1 or self.max_step_tokens < 1:
            raise ConfigError(
                f"max_steps ({self.max_steps}) and max_step_tokens ({self.max_step_tokens}) "
                "must be >= 1"
            )


def finish_reason(
    step: str, n_steps: int, hit_eos: bool, hit_delimiter: bool, cfg: StepConfig
) -> str | None:
    """Why a particle that just wrote ``step`` (its ``n_steps``-th) is finished, or None."""
    if hit_eos:
        return "eos"
    if cfg.answer_marker and cfg.answer_marker in step:
        return "answer"
    if not hit_delimiter:
        return "max_tokens"
    if n_steps >= cfg.max_steps:
        return "max_steps"
    return None


@runtime_checkable
class Engine(Protocol):
    """Extends partial answers of a policy by one step."""

    step: StepConfig

    async def start(self, problem: Problem, n: int) -> list[Particle]:
        """``n`` empty particles for ``problem`` (the prompt encoded once)."""
        ...

    async def extend(
        self, problem: Problem, particles: Sequence[Particle], temperature: float
    ) -> list[Particle]:
        """Each unfinished particle extended by one step; finished ones returned unchanged.

        ``temperature == 0`` is greedy. Token counts go to ``problem.usage``.
        """
        ...


async def extend_each(
    problem: Problem,
    particles: Sequence[Particle],
    one: Callable[[Particle, int], Awaitable[Particle]],
) -> list[Particle]:
    """Extend every particle concurrently with ``one(particle, seed)``; the seeds are drawn
    from the problem's own sampler, one per particle in order (for engines that make one
    request per particle: the same search seed gives the same requests)."""
    import torch

    seeds = [int(torch.randint(2**31 - 1, (1,), generator=problem.sampler)) for _ in particles]
    return list(await asyncio.gather(*(one(p, s) for p, s in zip(particles, seeds, strict=True))))
