"""``counting``: count a letter in a string. Prompt ``count a in abcaab``; answer ``Answer: 3``.

The string has ``min_len .. max_len`` letters drawn uniformly from ``alphabet`` (default
``abcd``, small so that counts are rarely zero); the target letter is drawn from the
alphabet too.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import ClassVar

from burnish.errors import TaskError
from burnish.tasks.base import ANSWER_PREFIX, Example, Task, _check_range

__all__ = ["CountingTask"]

_PROMPT = re.compile(r"count ([a-z]) in ([a-z]+)")


@dataclass(frozen=True)
class CountingTask(Task):
    """Number of occurrences of one letter in a short string."""

    name: ClassVar[str] = "counting"
    description: ClassVar[str] = "count how often a letter occurs in a string"
    usage: ClassVar[str] = "count a in abcaab"

    min_len: int = 4
    max_len: int = 10
    alphabet: str = "abcd"

    def validate(self) -> None:
        _check_range(self.name, "min_len", self.min_len, "max_len", self.max_len, 1)
        letters = self.alphabet
        if (
            not isinstance(letters, str)
            or not letters
            or len(set(letters)) != len(letters)
            or set(letters) - set(string.ascii_lowercase)
        ):
            raise TaskError(
                f"{self.name}: option alphabet must be a non-empty string of distinct "
                f"lowercase letters, got {letters!r}"
            )

    def random_prompt(self, rng: random.Random) -> str:
        length = rng.randint(self.min_len, self.max_len)
        text = "".join(rng.choice(self.alphabet) for _ in range(length))
        return f"count {rng.choice(self.alphabet)} in {text}"

    def solve(self, prompt: str) -> Example:
        match = self._parse(_PROMPT, prompt)
        return self._example(prompt, str(match.group(2).count(match.group(1))))

    @property
    def max_answer_chars(self) -> int:
        return len(ANSWER_PREFIX) + 1 + len(str(self.max_len))
