"""The arith_chain task: hand-checked solutions and the step checker."""

from __future__ import annotations

import random

import pytest

from burnish.tasks import get_task

PROMPT = "chain 7+3*2-5"
GOLD = "7+3=10\n10*2=20\n20-5=15\nAnswer: 15"


@pytest.fixture
def chain():
    return get_task("arith_chain")


def test_left_to_right(chain) -> None:
    example = chain.solve(PROMPT)
    assert example.answer == GOLD
    assert example.final == "15"
    assert chain.steps(example.answer) == ["7+3=10", "10*2=20", "20-5=15"]


def test_negative_intermediate(chain) -> None:
    assert chain.solve("chain 3-8*2+1").answer == "3-8=-5\n-5*2=-10\n-10+1=-9\nAnswer: -9"
    assert chain.score("chain 3-8*2+1", "Answer: -9")


def test_two_operands(chain) -> None:
    assert chain.solve("chain 12*12").answer == "12*12=144\nAnswer: 144"


def test_sample_respects_knobs() -> None:
    task = get_task("arith_chain", min_operands=2, max_operands=2, digits=2, operators="-")
    rng = random.Random(0)
    for _ in range(100):
        example = task.sample(rng)
        left, right = example.prompt.removeprefix("chain ").split("-")
        assert 1 <= int(left) <= 99 and 1 <= int(right) <= 99
        assert example.final == str(int(left) - int(right))


def test_default_operands_are_nonzero_single_digits(chain) -> None:
    rng = random.Random(0)
    for _ in range(100):
        expr = chain.sample(rng).prompt.removeprefix("chain ")
        operands = expr.replace("+", " ").replace("-", " ").replace("*", " ").split()
        assert 3 <= len(operands) <= 4
        assert all(o in "123456789" and len(o) == 1 for o in operands)


def test_check_steps_all_right(chain) -> None:
    assert chain.check_steps(PROMPT, GOLD) == [True] * 4
    assert (
        chain.check_steps(PROMPT, "7 + 3 = 10\n\n10*2=20\n 20 - 5 = 15\nAnswer:  15\n")
        == [True] * 4
    )


def test_check_steps_second_step_wrong(chain) -> None:
    completion = "7+3=10\n10*2=21\n21-5=16\nAnswer: 16"
    assert chain.check_steps(PROMPT, completion) == [True, False, False, False]


def test_check_steps_right_arithmetic_wrong_running_value(chain) -> None:
    completion = "7+3=11\n11*2=22\n22-5=17\nAnswer: 17"
    assert chain.check_steps(PROMPT, completion) == [False, False, False, False]


def test_check_steps_extra_lines(chain) -> None:
    completion = "7+3=10\n10*2=20\n20-5=15\n15+0=15\nAnswer: 15"
    assert chain.check_steps(PROMPT, completion) == [True, True, True, False, True]
    assert chain.check_steps(PROMPT, GOLD + "\nmore") == [True, True, True, False, False]
    assert chain.check_steps(PROMPT, GOLD + "\nAnswer: 15") == [True, True, True, False, True]


def test_check_steps_malformed_lines(chain) -> None:
    assert chain.check_steps(PROMPT, "7+3=10\n???\nAnswer: 15") == [True, False, True]
    assert chain.check_steps(PROMPT, "garbage") == [False]
    assert chain.check_steps(PROMPT, "") == []
    assert chain.check_steps(PROMPT, "Answer: 14") == [False]


def test_check_steps_truncated(chain) -> None:
    assert chain.check_steps(PROMPT, "7+3=10\n10*2=20") == [True, True]


@pytest.mark.parametrize("name", ["addition", "sorting", "reversal", "counting", "comparison"])
def test_check_steps_without_steps(name: str) -> None:
    task = get_task(name)
    example = task.sample(random.Random(0))
    assert not task.has_steps
    assert task.check_steps(example.prompt, example.answer) == [True]
    assert task.check_steps(example.prompt, "thinking\nAnswer: x") == [False]
    assert task.check_steps(example.prompt, "  \n") == []
