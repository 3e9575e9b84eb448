"""``arith_chain``: a chain of + - * evaluated strictly left to right, one step per line.

Prompt ``chain 7+3*2-5``; answer::

    7+3=10
    10*2=20
    20-5=15
    Answer: 15

There is no operator precedence: each step applies the next operator to the running value.
Running values may go negative (``3-8=-5`` then ``-5*2=-10``). Operands are drawn uniformly
from ``1 .. 10**digits - 1``; zero is excluded because it makes products trivial.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import ClassVar

from burnish.errors import TaskError
from burnish.tasks.base import ANSWER_PREFIX, Example, Task, _check_int, _check_range

__all__ = ["ArithChainTask"]

_OPERATORS = "+-*"
_PROMPT = re.compile(r"chain (\d+(?:[-+*]\d+)+)")
_TOKEN = re.compile(r"\d+|[-+*]")


def _apply(left: int, op: str, right: int) -> int:
    """``left op right`` for one of the supported operators."""
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    return left * right


@dataclass(frozen=True)
class ArithChainTask(Task):
    """Left-to-right arithmetic chain with one step line per operator."""

    name: ClassVar[str] = "arith_chain"
    description: ClassVar[str] = "evaluate a + - * chain strictly left to right, step by step"
    usage: ClassVar[str] = "chain 7+3*2-5"
    has_steps: ClassVar[bool] = True

    min_operands: int = 3
    max_operands: int = 4
    digits: int = 1
    operators: str = _OPERATORS

    def validate(self) -> None:
        _check_range(
            self.name, "min_operands", self.min_operands, "max_operands", self.max_operands, 2
        )
        _check_int(self.name, "digits", self.digits, 1)
        ops = self.operators
        valid = isinstance(ops, str) and bool(ops) and len(set(ops)) == len(ops)
        if not valid or set(ops) - set(_OPERATORS):
            raise TaskError(
                f"{self.name}: option operators must be a non-empty string of distinct "
                f"characters from {_OPERATORS!r}, got {ops!r}"
            )

    def random_prompt(self, rng: random.Random) -> str:
        count = rng.randint(self.min_operands, self.max_operands)
        hi = 10**self.digits - 1
        parts = [str(rng.randint(1, hi))]
        for _ in range(count - 1):
            parts += [rng.choice(self.operators), str(rng.randint(1, hi))]
        return "chain " + "".join(parts)

    def solve(self, prompt: str) -> Example:
        tokens = _TOKEN.findall(self._parse(_PROMPT, prompt).group(1))
        value = int(tokens[0])
        steps = []
        for op, operand in zip(tokens[1::2], tokens[2::2], strict=True):
            new = _apply(value, op, int(operand))
            steps.append(f"{value}{op}{int(operand)}={new}")
            value = new
        return self._example(prompt, str(value), steps)

    @property
    def max_answer_chars(self) -> int:
        operand = 10**self.digits - 1
        bound = operand  # largest possible |running value| so far
        chars = 0
        for _ in range(self.max_operands - 1):
            new = max(
                bound + operand if set(self.operators) & set("+-") else 0,
                bound * operand if "*" in self.operators else 0,
            )
            # "-a op b=-c\n": signs counted as if always present.
            chars += len(str(bound)) + 1 + 1 + len(str(operand)) + 1 + len(str(new)) + 1 + 1
            bound = new
        return chars + len(ANSWER_PREFIX) + 1 + len(str(bound)) + 1
