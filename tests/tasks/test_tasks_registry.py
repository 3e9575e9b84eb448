"""Registry lookups, knob validation, round trips, charset and length bounds of every task."""

from __future__ import annotations

import random

import pytest

from burnish.errors import DataError, TaskError
from burnish.tasks import ANSWER_PREFIX, CHARSET, TASKS, Example, get_task, list_tasks, mixture


def test_list_tasks_matches_registry() -> None:
    assert list_tasks() == sorted(TASKS)
    assert set(list_tasks()) == {
        "addition",
        "arith_chain",
        "comparison",
        "counting",
        "reversal",
        "sorting",
    }


@pytest.mark.parametrize("name", list_tasks())
def test_task_metadata(name: str) -> None:
    task = get_task(name)
    assert task.name == name
    assert task.description.strip()
    assert task.solve(task.usage).prompt == task.usage


@pytest.mark.parametrize("name", list_tasks())
def test_sample_solve_round_trip(name: str) -> None:
    task = get_task(name)
    rng = random.Random(0)
    for _ in range(100):
        example = task.sample(rng)
        assert example.task == name
        assert task.solve(example.prompt) == example
        assert example.answer.splitlines()[-1] == f"{ANSWER_PREFIX} {example.final}"
        assert task.score(example.prompt, example.answer)


@pytest.mark.parametrize("name", list_tasks())
def test_text_within_charset(name: str) -> None:
    task = get_task(name)
    rng = random.Random(1)
    for _ in range(200):
        example = task.sample(rng)
        assert set(example.prompt + example.answer) <= CHARSET, example
        assert "\n" not in example.prompt


@pytest.mark.parametrize(
    ("name", "knobs"),
    [
        ("arith_chain", {}),
        ("arith_chain", {"digits": 2, "min_operands": 2, "max_operands": 6}),
        ("arith_chain", {"operators": "*", "max_operands": 5}),
        ("arith_chain", {"operators": "-"}),
        ("addition", {"digits": 4}),
        ("sorting", {"max_len": 9}),
        ("reversal", {}),
        ("counting", {"max_len": 12}),
        ("comparison", {"digits": 3}),
    ],
)
def test_max_new_tokens_bounds_answers(name: str, knobs: dict) -> None:
    task = get_task(name, **knobs)
    rng = random.Random(2)
    longest = max(len(task.sample(rng).answer) for _ in range(300))
    assert longest <= task.max_new_tokens <= longest + 80


def test_to_messages() -> None:
    example = get_task("addition").solve("add 47+85")
    assert example == Example("addition", "add 47+85", "Answer: 132", "132")
    assert example.to_messages() == {
        "messages": [
            {"role": "user", "content": "add 47+85"},
            {"role": "assistant", "content": "Answer: 132"},
        ],
        "task": "addition",
        "final": "132",
    }


@pytest.mark.parametrize(
    ("name", "prompt", "answer"),
    [
        ("addition", "add 47+85", "Answer: 132"),
        ("sorting", "sort 5 3 9 1", "Answer: 1 3 5 9"),
        ("reversal", "reverse kdfa", "Answer: afdk"),
        ("counting", "count a in abcaab", "Answer: 3"),
        ("comparison", "max 31 7 58", "Answer: 58"),
    ],
)
def test_hand_checked_single_step_tasks(name: str, prompt: str, answer: str) -> None:
    assert get_task(name).solve(prompt).answer == answer


def test_unknown_task_lists_known_names() -> None:
    with pytest.raises(TaskError) as info:
        get_task("multiplication")
    message = str(info.value)
    assert "multiplication" in message
    assert all(name in message for name in list_tasks())


def test_unknown_knob_names_valid_ones() -> None:
    with pytest.raises(TaskError) as info:
        get_task("addition", digit=3)
    message = str(info.value)
    assert "'digit'" in message and "digits" in message


@pytest.mark.parametrize(
    ("name", "knobs"),
    [
        ("arith_chain", {"min_operands": 1}),
        ("arith_chain", {"min_operands": 4, "max_operands": 3}),
        ("arith_chain", {"digits": 0}),
        ("arith_chain", {"operators": ""}),
        ("arith_chain", {"operators": "+/"}),
        ("arith_chain", {"operators": "++"}),
        ("addition", {"digits": 0}),
        ("addition", {"digits": "2"}),
        ("addition", {"digits": True}),
        ("sorting", {"min_len": 0}),
        ("sorting", {"min_len": 5, "max_len": 4}),
        ("reversal", {"max_len": 2}),
        ("counting", {"alphabet": ""}),
        ("counting", {"alphabet": "aA"}),
        ("counting", {"alphabet": "aab"}),
        ("comparison", {"digits": -1}),
    ],
)
def test_bad_knob_values(name: str, knobs: dict) -> None:
    with pytest.raises(TaskError, match=name):
        get_task(name, **knobs)


@pytest.mark.parametrize("name", list_tasks())
@pytest.mark.parametrize("prompt", ["", "hello", "chain", "add 1+", "sort 5, 3", "max -3 4"])
def test_solve_rejects_malformed_prompts(name: str, prompt: str) -> None:
    with pytest.raises(DataError):
        get_task(name).solve(prompt)


def test_solve_rejects_other_tasks_prompts() -> None:
    with pytest.raises(DataError, match="add 47"):
        get_task("addition").solve("chain 1+2")


def test_mixture_is_deterministic_and_interleaved() -> None:
    names = ["addition", "sorting", "reversal"]
    first = mixture(names, n_per_task=30, split="train", seed=0)
    assert first == mixture(names, n_per_task=30, split="train", seed=0)
    assert first != mixture(names, n_per_task=30, split="train", seed=1)
    assert len(first) == 90
    assert {e.task: 0 for e in first}.keys() == set(names)
    assert [e.task for e in first[:30]] != ["addition"] * 30  # shuffled, not concatenated
    assert sorted(first, key=repr) == sorted(
        [e for n in names for e in get_task(n).generate(30, "train", 0)], key=repr
    )


def test_mixture_unknown_task() -> None:
    with pytest.raises(TaskError, match="known tasks"):
        mixture(["addition", "nope"], n_per_task=2, split="train", seed=0)
