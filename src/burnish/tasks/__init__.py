"""Synthetic tasks with verifiable answers, for training and evaluating small causal LMs.

>>> task = get_task("arith_chain")
>>> task.solve("chain 7+3*2-5").answer
'7+3=10\\n10*2=20\\n20-5=15\\nAnswer: 15'
>>> task.score("chain 7+3*2-5", "Answer: 15")
True
"""

from __future__ import annotations

from burnish.tasks.addition import AdditionTask
from burnish.tasks.arith_chain import ArithChainTask
from burnish.tasks.base import (
    ANSWER_PREFIX,
    CHARSET,
    SPLITS,
    TEST_FRACTION,
    Example,
    Task,
    normalize_whitespace,
    split_of,
)
from burnish.tasks.comparison import ComparisonTask
from burnish.tasks.counting import CountingTask
from burnish.tasks.registry import TASKS, get_task, list_tasks, mixture
from burnish.tasks.reversal import ReversalTask
from burnish.tasks.sorting import SortingTask

__all__ = [
    "ANSWER_PREFIX",
    "CHARSET",
    "SPLITS",
    "TASKS",
    "TEST_FRACTION",
    "AdditionTask",
    "ArithChainTask",
    "ComparisonTask",
    "CountingTask",
    "Example",
    "ReversalTask",
    "SortingTask",
    "Task",
    "get_task",
    "list_tasks",
    "mixture",
    "normalize_whitespace",
    "split_of",
]
