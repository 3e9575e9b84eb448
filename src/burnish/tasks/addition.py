"""``addition``: add two non-negative integers. Prompt ``add 47+85``; answer ``Answer: 132``.

Operands are drawn uniformly from ``0 .. 10**digits - 1``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import ClassVar

from burnish.tasks.base import ANSWER_PREFIX, Example, Task, _check_int

__all__ = ["AdditionTask"]

_PROMPT = re.compile(r"add (\d+)\+(\d+)")


@dataclass(frozen=True)
class AdditionTask(Task):
    """Sum of two ``digits``-digit (at most) numbers."""

    name: ClassVar[str] = "addition"
    description: ClassVar[str] = "add two non-negative integers"
    usage: ClassVar[str] = "add 47+85"

    digits: int = 2

    def validate(self) -> None:
        _check_int(self.name, "digits", self.digits, 1)

    def random_prompt(self, rng: random.Random) -> str:
        hi = 10**self.digits - 1
        return f"add {rng.randint(0, hi)}+{rng.randint(0, hi)}"

    def solve(self, prompt: str) -> Example:
        match = self._parse(_PROMPT, prompt)
        return self._example(prompt, str(int(match.group(1)) + int(match.group(2))))

    @property
    def max_answer_chars(self) -> int:
        return len(ANSWER_PREFIX) + 1 + self.digits + 1
