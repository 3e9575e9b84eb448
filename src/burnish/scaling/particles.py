"""Particles (partial answers), problems and token accounting shared by engines and searches."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

__all__ = ["Particle", "Problem", "Usage"]


@dataclass
class Usage:
    """Tokens spent on one problem.

    Attributes:
        prefill: prompt/prefix tokens encoded by the policy (not counting generated ones).
        generated: tokens sampled by the policy (each is also encoded once when fed back).
        prm: tokens encoded by the reward model.
        reencode: tokens the policy would encode if every particle's whole prefix were
            re-encoded each step (the way a stateless server client works), generated tokens
            included: counted in the same run, to compare with ``encoded``.
        padded: batch slots the policy computed for this problem, padding included.
        policy_calls: extension rounds (one per step) this problem took part in.
    """

    prefill: int = 0
    generated: int = 0
    prm: int = 0
    reencode: int = 0
    padded: int = 0
    policy_calls: int = 0

    @property
    def encoded(self) -> int:
        """Tokens the policy actually encoded: prefill plus every generated token fed back."""
        return self.prefill + self.generated

    def as_dict(self) -> dict[str, int]:
        return {
            "prefill": self.prefill,
            "generated": self.generated,
            "encoded": self.encoded,
            "reencode": self.reencode,
            "prm": self.prm,
            "padded": self.padded,
            "policy_calls": self.policy_calls,
        }


def _seed_of(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:15], 16)


@dataclass
class Problem:
    """One prompt being searched, with its own seeded random streams and token counters.

    Randomness is per problem (not per batch), so a problem's result does not depend on which
    other problems share its batches: a resumed run reproduces the problems it redoes.
    """

    prompt: str
    seed: int = 0
    usage: Usage = field(default_factory=Usage)

    def __post_init__(self) -> None:
        s = _seed_of(self.seed, self.prompt)
        self.sampler = torch.Generator().manual_seed(s)  # token sampling (engines)
        self.rng = np.random.default_rng(s)  # resampling, swaps (algorithms)
        self._uids = itertools.count()

    def next_uid(self) -> int:
        return next(self._uids)


@dataclass(frozen=True)
class Particle:
    """A partial answer: the steps so far and where it came from.

    Attributes:
        uid: id unique within its problem; ``parent`` is the uid it was extended from.
        steps: completed step texts, without the step delimiter.
        token_ids: every generated token id so far (the policy's own tokenization).
        step_logprobs: mean log-probability of each step's tokens under the policy.
        finished: no more steps will be added; ``finish_reason`` says why
            ("eos", "answer", "max_steps", "max_tokens").
        handle: engine-private state (e.g. a KV-cache row); never inspected by searches.
    """

    uid: int
    parent: int | None = None
    steps: tuple[str, ...] = ()
    token_ids: tuple[int, ...] = ()
    step_logprobs: tuple[float, ...] = ()
    finished: bool = False
    finish_reason: str | None = None
    handle: Any = field(default=None, repr=False, compare=False)

    @property
    def text(self) -> str:
        """The answer so far, one step a line."""
        return "\n".join(self.steps)

    def child(self, uid: int, **changes: Any) -> Particle:
        """A copy with a new uid whose parent is this particle."""
        return replace(self, uid=uid, parent=self.uid, **changes)
