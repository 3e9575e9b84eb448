"""The PRM build's contrastive data: minimally corrupted gold solutions, labelled by the checker."""

from __future__ import annotations

import random

from burnish.scaling.build_prm import corrupt_solution, label_solutions
from burnish.tasks import get_task


def test_corrupted_solutions_are_wrong_from_the_corruption_on() -> None:
    task = get_task("arith_chain")
    rng = random.Random(0)
    for example in task.generate(50, "train", seed=3):
        gold = task.solve(example.prompt).answer
        for _ in range(4):
            bad = corrupt_solution(gold, rng)
            steps, labels = label_solutions(task.name, example.prompt, bad)
            assert len(steps) == len(gold.splitlines())
            assert bad != gold
            assert not labels[-1]  # the final answer is wrong ...
            first_bad = labels.index(False)
            assert all(labels[:first_bad]) and not any(labels[first_bad:])  # ... from there on
            gold_lines = gold.splitlines()
            assert steps[:first_bad] == gold_lines[:first_bad]
            # the chain stays consistent: the answer restates the last step's result
            if len(steps) > 1 and first_bad < len(steps) - 1:
                assert steps[-1].split(": ")[1] == steps[-2].split("=")[1]
