"""``sorting``: sort single digits ascending. Prompt ``sort 5 3 9 1``; answer ``Answer: 1 3 5 9``.

The list has ``min_len .. max_len`` digits, each drawn uniformly from 0-9 (repeats allowed).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import ClassVar

from burnish.tasks.base import ANSWER_PREFIX, Example, Task, _check_range

__all__ = ["SortingTask"]

_PROMPT = re.compile(r"sort (\d(?: \d)*)")


@dataclass(frozen=True)
class SortingTask(Task):
    """Ascending sort of a short list of digits."""

    name: ClassVar[str] = "sorting"
    description: ClassVar[str] = "sort a list of single digits in ascending order"
    usage: ClassVar[str] = "sort 5 3 9 1"

    min_len: int = 3
    max_len: int = 6

    def validate(self) -> None:
        _check_range(self.name, "min_len", self.min_len, "max_len", self.max_len, 1)

    def random_prompt(self, rng: random.Random) -> str:
        length = rng.randint(self.min_len, self.max_len)
        return "sort " + " ".join(str(rng.randint(0, 9)) for _ in range(length))

    def solve(self, prompt: str) -> Example:
        values = self._parse(_PROMPT, prompt).group(1).split()
        return self._example(prompt, " ".join(sorted(values)))

    @property
    def max_answer_chars(self) -> int:
        return len(ANSWER_PREFIX) + 1 + 2 * self.max_len - 1
