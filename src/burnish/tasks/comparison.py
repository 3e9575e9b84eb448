"""``comparison``: the largest of a few numbers. Prompt ``max 31 7 58``; answer ``Answer: 58``.

The list has ``min_len .. max_len`` numbers drawn uniformly from ``0 .. 10**digits - 1``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import ClassVar

from burnish.tasks.base import ANSWER_PREFIX, Example, Task, _check_int, _check_range

__all__ = ["ComparisonTask"]

_PROMPT = re.compile(r"max (\d+(?: \d+)*)")


@dataclass(frozen=True)
class ComparisonTask(Task):
    """Maximum of a short list of non-negative integers."""

    name: ClassVar[str] = "comparison"
    description: ClassVar[str] = "find the largest of a list of non-negative integers"
    usage: ClassVar[str] = "max 31 7 58"

    min_len: int = 2
    max_len: int = 5
    digits: int = 2

    def validate(self) -> None:
        _check_range(self.name, "min_len", self.min_len, "max_len", self.max_len, 1)
        _check_int(self.name, "digits", self.digits, 1)

    def random_prompt(self, rng: random.Random) -> str:
        length = rng.randint(self.min_len, self.max_len)
        hi = 10**self.digits - 1
        return "max " + " ".join(str(rng.randint(0, hi)) for _ in range(length))

    def solve(self, prompt: str) -> Example:
        values = self._parse(_PROMPT, prompt).group(1).split()
        return self._example(prompt, str(max(int(v) for v in values)))

    @property
    def max_answer_chars(self) -> int:
        return len(ANSWER_PREFIX) + 1 + self.digits
