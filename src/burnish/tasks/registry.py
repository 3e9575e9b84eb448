"""The task registry: look tasks up by name, with knob validation, and mix several tasks."""

from __future__ import annotations

import dataclasses
import hashlib
import random

from burnish.errors import TaskError
from burnish.tasks.addition import AdditionTask
from burnish.tasks.arith_chain import ArithChainTask
from burnish.tasks.base import Example, Task
from burnish.tasks.comparison import ComparisonTask
from burnish.tasks.counting import CountingTask
from burnish.tasks.reversal import ReversalTask
from burnish.tasks.sorting import SortingTask

__all__ = ["TASKS", "get_task", "list_tasks", "mixture"]

TASKS: dict[str, type[Task]] = {
    ArithChainTask.name: ArithChainTask,
    AdditionTask.name: AdditionTask,
    SortingTask.name: SortingTask,
    ReversalTask.name: ReversalTask,
    CountingTask.name: CountingTask,
    ComparisonTask.name: ComparisonTask,
}


def list_tasks() -> list[str]:
    """Names of all registered tasks, sorted."""
    return sorted(TASKS)


def get_task(name: str, **knobs: object) -> Task:
    """An instance of task ``name`` with the given knob values (defaults for the rest).

    Raises TaskError for an unknown task, an unknown knob or an invalid knob value.
    """
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}")
    cls = TASKS[name]
    valid = [f.name for f in dataclasses.fields(cls)]
    for knob in knobs:
        if knob not in valid:
            options = ", ".join(valid) if valid else "(none)"
            raise TaskError(f"task {name!r} has no option {knob!r}; valid options: {options}")
    return cls(**knobs)


def mixture(
    names: list[str],
    n_per_task: int,
    split: str,
    seed: int,
    knobs: dict[str, object] | None = None,
) -> list[Example]:
    """``n_per_task`` examples of each named task, deterministically shuffled.

    ``knobs`` (task options, e.g. ``{"min_operands": 4}``) apply to every named task; a knob
    a task does not have is a TaskError.
    """
    examples: list[Example] = []
    for name in names:
        examples += get_task(name, **(knobs or {})).generate(n_per_task, split=split, seed=seed)
    key = f"mixture|{','.join(names)}|{n_per_task}|{split}|{seed}"
    if knobs:
        key += "|" + ",".join(f"{k}={v!r}" for k, v in sorted(knobs.items()))
    random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16)).shuffle(examples)
    return examples
