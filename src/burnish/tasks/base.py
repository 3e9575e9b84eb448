"""Shared machinery for synthetic tasks: examples, splits, answer extraction and scoring.

A task turns a random generator into short (prompt, answer) pairs whose answers can be
checked exactly. Every answer ends with a line ``Answer: <final>``; tasks with intermediate
steps put one step per line before it. All text stays within :data:`CHARSET` (printable
ASCII plus newline), the alphabet of the character-level tokenizer.

Train and test are separated by hashing the prompt (:func:`split_of`), so the two splits
are disjoint for every seed and every knob setting.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import random
import re
from dataclasses import dataclass
from typing import ClassVar

from burnish.errors import DataError, TaskError

__all__ = [
    "ANSWER_PREFIX",
    "CHARSET",
    "SPLITS",
    "TEST_FRACTION",
    "Example",
    "Task",
    "normalize_whitespace",
    "split_of",
]

ANSWER_PREFIX = "Answer:"
CHARSET: frozenset[str] = frozenset(chr(c) for c in range(32, 127)) | {"\n"}
SPLITS = ("train", "test")
TEST_FRACTION = 0.2

# Extra characters on top of the longest possible answer, for max_new_tokens.
_MARGIN = 4


@dataclass(frozen=True)
class Example:
    """One problem with its gold solution.

    Attributes:
        task: registry name of the task that produced it.
        prompt: the user message.
        answer: full assistant text: step lines (if any) then ``Answer: <final>``.
        final: the final answer alone, which is what scoring compares.
    """

    task: str
    prompt: str
    answer: str
    final: str

    def to_messages(self) -> dict:
        """Chat-format row: ``{"messages": [user, assistant], "task": ..., "final": ...}``."""
        return {
            "messages": [
                {"role": "user", "content": self.prompt},
                {"role": "assistant", "content": self.answer},
            ],
            "task": self.task,
            "final": self.final,
        }


def normalize_whitespace(text: str) -> str:
    """Strip ``text`` and collapse every internal run of whitespace to one space."""
    return " ".join(text.split())


def split_of(task_name: str, prompt: str, test_fraction: float = TEST_FRACTION) -> str:
    """The split (``"train"`` or ``"test"``) a prompt belongs to, from a stable hash.

    Depends only on the task name and the prompt (not on knobs or seeds), so a prompt is in
    the same split however it was generated.
    """
    digest = hashlib.sha256(f"{task_name}|{prompt}".encode()).hexdigest()
    return "test" if int(digest[:8], 16) / 2**32 < test_fraction else "train"


def _nonempty_lines(text: str) -> list[str]:
    """The lines of ``text`` that are not blank, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def _is_answer_line(line: str) -> bool:
    return line.strip().startswith(ANSWER_PREFIX)


def _answer_value(line: str) -> str:
    return line.strip()[len(ANSWER_PREFIX) :].strip()


def _check_int(task: str, knob: str, value: object, minimum: int) -> None:
    """Raise TaskError unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TaskError(f"{task}: option {knob} must be an integer >= {minimum}, got {value!r}")


def _check_range(
    task: str, lo_knob: str, lo: object, hi_knob: str, hi: object, minimum: int
) -> None:
    """Validate a pair of int knobs with ``minimum <= lo <= hi``."""
    _check_int(task, lo_knob, lo, minimum)
    _check_int(task, hi_knob, hi, minimum)
    if hi < lo:  # type: ignore[operator]
        raise TaskError(f"{task}: option {hi_knob}={hi} must be >= {lo_knob}={lo}")


@dataclass(frozen=True)
class Task(abc.ABC):
    """Base class of all tasks. Subclasses are frozen dataclasses whose fields are knobs.

    A subclass sets the class variables, checks its knobs in :meth:`validate`, draws
    prompts in :meth:`random_prompt` and computes gold solutions in :meth:`solve`.
    Sampling goes through :meth:`solve`, so a sampled example and the example recomputed
    from its prompt are always identical.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    usage: ClassVar[str]  # an example prompt, shown in parse errors
    has_steps: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.validate()

    # ---- to implement in subclasses -------------------------------------------------

    @abc.abstractmethod
    def validate(self) -> None:
        """Raise TaskError if a knob value is invalid."""

    @abc.abstractmethod
    def random_prompt(self, rng: random.Random) -> str:
        """Draw one random prompt according to the knobs."""

    @abc.abstractmethod
    def solve(self, prompt: str) -> Example:
        """Recompute the gold example from a prompt; DataError if it does not parse.

        Any well-formed prompt of the task is accepted, even one outside the current knobs.
        """

    @property
    @abc.abstractmethod
    def max_answer_chars(self) -> int:
        """Upper bound on the length of the full answer text under the current knobs."""

    # ---- generic behaviour ----------------------------------------------------------

    @property
    def max_new_tokens(self) -> int:
        """Characters (= tokens for a char-level model) enough to generate any full answer."""
        return self.max_answer_chars + _MARGIN

    def knobs(self) -> dict[str, object]:
        """The knob values of this task, in field order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def sample(self, rng: random.Random) -> Example:
        """One random problem with its gold answer."""
        return self.solve(self.random_prompt(rng))

    def extract_answer(self, text: str) -> str | None:
        """The value of the last line starting with ``Answer:``, stripped; None if absent."""
        for line in reversed(text.splitlines()):
            if _is_answer_line(line):
                return _answer_value(line)
        return None

    def score(self, prompt: str, completion: str) -> bool:
        """Whether the completion's final answer equals the gold one (whitespace-normalised).

        A completion without an ``Answer:`` line scores False.
        """
        predicted = self.extract_answer(completion)
        if predicted is None:
            return False
        return normalize_whitespace(predicted) == normalize_whitespace(self.solve(prompt).final)

    def steps(self, answer: str) -> list[str]:
        """The non-empty lines (stripped) before the last ``Answer:`` line.

        Without an ``Answer:`` line, every non-empty line counts as a step.
        """
        lines = answer.splitlines()
        for i in range(len(lines) - 1, -1, -1):
            if _is_answer_line(lines[i]):
                lines = lines[:i]
                break
        return _nonempty_lines("\n".join(lines))

    def check_steps(self, prompt: str, completion: str) -> list[bool]:
        """Per-line correctness of a completion, for process supervision.

        Returns one bool per non-empty line of ``completion``, in order:

        * An ``Answer:`` line is correct iff it is the last line and its value equals the
          gold final answer (whitespace-normalised).
        * Any other line ``i`` is correct iff it equals line ``i`` of the gold answer once
          all spaces are removed. Lines beyond the gold answer's length are wrong. Each step
          restates its running value, so after a wrong step the later lines no longer match
          the gold ones and are wrong too, unless the completion gets back onto the gold
          path.

        For tasks without steps the result is ``[self.score(prompt, completion)]``, or
        ``[]`` for a completion with no non-empty line.
        """
        lines = _nonempty_lines(completion)
        if not lines:
            return []
        gold = self.solve(prompt)
        if not self.has_steps:
            return [self.score(prompt, completion)]
        gold_lines = [line.replace(" ", "") for line in _nonempty_lines(gold.answer)]
        final = normalize_whitespace(gold.final)
        result = []
        for i, line in enumerate(lines):
            if _is_answer_line(line):
                ok = i == len(lines) - 1 and normalize_whitespace(_answer_value(line)) == final
            else:
                ok = i < len(gold_lines) and line.replace(" ", "") == gold_lines[i]
            result.append(ok)
        return result

    def step_labels(self, prompt: str, completion: str) -> tuple[list[str], list[bool]]:
        """(steps, labels) for process supervision: the non-empty lines of ``completion``,
        each labelled good iff it and every line before it are correct
        (:meth:`check_steps`)."""
        steps = _nonempty_lines(completion)
        labels, ok = [], True
        for correct in self.check_steps(prompt, completion):
            ok = ok and correct
            labels.append(ok)
        return steps, labels

    def generate(
        self, n: int, split: str = "train", seed: int = 0, unique: bool | None = None
    ) -> list[Example]:
        """``n`` examples of ``split``, deterministic in (task, knobs, split, seed).

        Only prompts that :func:`split_of` assigns to ``split`` are kept, so train and test
        never share a prompt. ``unique`` (default: True for test, False for train) forbids
        repeated prompts; TaskError if not enough problems are found.
        """
        if split not in SPLITS:
            raise TaskError(f"{self.name}: unknown split {split!r}; use one of {list(SPLITS)}")
        _check_int(self.name, "n", n, 0)
        if unique is None:
            unique = split == "test"
        knobs = ",".join(f"{k}={v!r}" for k, v in self.knobs().items())
        key = f"{self.name}|{knobs}|{split}|{seed}"
        rng = random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))
        examples: list[Example] = []
        seen: set[str] = set()
        max_draws = 50 * n + 1000
        draws = 0
        while len(examples) < n and draws < max_draws:
            draws += 1
            prompt = self.random_prompt(rng)
            if split_of(self.name, prompt) != split or (unique and prompt in seen):
                continue
            seen.add(prompt)
            examples.append(self.solve(prompt))
        if len(examples) < n:
            kind = "unique " if unique else ""
            raise TaskError(
                f"{self.name}: found only {len(examples)} {kind}{split} problems of the {n} "
                f"requested after {draws} draws with options {self.knobs()}; ask for fewer "
                "examples or use options that allow more problems (more digits, longer inputs)"
            )
        return examples

    # ---- helpers for subclasses -----------------------------------------------------

    def _parse(self, pattern: re.Pattern[str], prompt: str) -> re.Match[str]:
        """Full-match ``prompt`` (stripped) against ``pattern``; DataError if it fails."""
        match = pattern.fullmatch(prompt.strip()) if isinstance(prompt, str) else None
        if match is None:
            raise DataError(
                f"{self.name}: cannot parse prompt {prompt!r}; expected e.g. {self.usage!r}"
            )
        return match

    def _example(self, prompt: str, final: str, steps: list[str] | None = None) -> Example:
        """Build an Example whose answer is the step lines then ``Answer: <final>``."""
        answer = "\n".join([*(steps or []), f"{ANSWER_PREFIX} {final}"])
        return Example(task=self.name, prompt=prompt.strip(), answer=answer, final=final)
