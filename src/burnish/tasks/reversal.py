"""``reversal``: reverse a lowercase string. Prompt ``reverse kdfa``; answer ``Answer: afdk``.

The string has ``min_len .. max_len`` letters drawn uniformly from a-z.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import ClassVar

from burnish.tasks.base import ANSWER_PREFIX, Example, Task, _check_range

__all__ = ["ReversalTask"]

_PROMPT = re.compile(r"reverse ([a-z]+)")


@dataclass(frozen=True)
class ReversalTask(Task):
    """Reverse a short word of random lowercase letters."""

    name: ClassVar[str] = "reversal"
    description: ClassVar[str] = "reverse a string of lowercase letters"
    usage: ClassVar[str] = "reverse kdfa"

    min_len: int = 3
    max_len: int = 7

    def validate(self) -> None:
        _check_range(self.name, "min_len", self.min_len, "max_len", self.max_len, 1)

    def random_prompt(self, rng: random.Random) -> str:
        length = rng.randint(self.min_len, self.max_len)
        return "reverse " + "".join(rng.choice(string.ascii_lowercase) for _ in range(length))

    def solve(self, prompt: str) -> Example:
        return self._example(prompt, self._parse(_PROMPT, prompt).group(1)[::-1])

    @property
    def max_answer_chars(self) -> int:
        return len(ANSWER_PREFIX) + 1 + self.max_len
