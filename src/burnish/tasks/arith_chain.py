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

__all__ = ["ArithChainTask", "corrupt_solution", "nudge"]

_OPERATORS = "+-*"
_PROMPT = re.compile(r"chain (\d+(?:[-+*]\d+)+)")
_TOKEN = re.compile(r"\d+|[-+*]")
_STEP = re.compile(r"(-?\d+)([-+*])(\d+)=(-?\d+)$")
_DELTAS = (-10, -2, -1, 1, 2, 10)


def nudge(value: int, rng: random.Random) -> int:
    """A wrong value close to ``value``: off by a little, or two adjacent digits swapped."""
    digits = str(abs(value))
    if len(digits) > 1 and rng.random() < 0.25:
        i = rng.randrange(len(digits) - 1)
        swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
        new = int(swapped) * (-1 if value < 0 else 1)
        if new != value:
            return new
    return value + rng.choice(_DELTAS)


def corrupt_solution(gold: str, rng: random.Random) -> str:
    """A minimally wrong copy of a gold ``arith_chain`` solution (contrastive PRM data).

    One step's result (or only the final ``Answer:`` value) is nudged (:func:`nudge`); the
    steps after a nudged result continue from the wrong value, as a policy that slipped once
    would.
    """
    lines = gold.splitlines()
    steps, answer = lines[:-1], lines[-1]
    k = rng.randrange(len(steps) + 1)
    if k == len(steps):  # only the answer line is wrong
        value = int(answer.split(":", 1)[1])
        return "\n".join([*steps, f"{ANSWER_PREFIX} {nudge(value, rng)}"])
    out, value = [], None
    for i, line in enumerate(steps):
        m = _STEP.match(line.replace(" ", ""))
        if m is None:
            raise ValueError(f"not an arith_chain step: {line!r}")
        left, op, right = int(m[1]) if value is None else value, m[2], int(m[3])
        value = _apply(left, op, right)
        if i == k:
            value = nudge(value, rng)
        out.append(f"{left}{op}{right}={value}")
    return "\n".join([*out, f"{ANSWER_PREFIX} {value}"])


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
