"""Answer extraction and final-answer scoring."""

from __future__ import annotations

import itertools

import pytest

from burnish.errors import DataError
from burnish.tasks import get_task, list_tasks


@pytest.fixture
def addition():
    return get_task("addition")


def test_extract_answer(addition) -> None:
    assert addition.extract_answer("Answer: 132") == "132"
    assert addition.extract_answer("work\n  Answer:   1 3  \n") == "1 3"
    assert addition.extract_answer("Answer:7") == "7"
    assert addition.extract_answer("Answer: 1\nAnswer: 2\ntrailing") == "2"
    assert addition.extract_answer("the answer is 132") is None
    assert addition.extract_answer("") is None


def test_right_and_wrong(addition) -> None:
    assert addition.score("add 47+85", "Answer: 132")
    assert not addition.score("add 47+85", "Answer: 131")
    assert not addition.score("add 47+85", "Answer: 132.")


@pytest.mark.parametrize("completion", ["", "132", "answer: 132", "Answer:", "!!\n\n??", "A"])
def test_malformed_is_false(addition, completion: str) -> None:
    assert not addition.score("add 47+85", completion)


def test_whitespace_tolerated() -> None:
    sorting = get_task("sorting")
    assert sorting.score("sort 5 3 9 1", "  Answer:   1  3 5\t9  \n\n")
    assert not sorting.score("sort 5 3 9 1", "Answer: 1359")


def test_last_answer_line_wins(addition) -> None:
    assert addition.score("add 47+85", "Answer: 5\nAnswer: 132")
    assert not addition.score("add 47+85", "Answer: 132\nAnswer: 5")


def test_malformed_prompt_raises(addition) -> None:
    with pytest.raises(DataError):
        addition.score("add 47 + 85 please", "Answer: 132")


@pytest.mark.parametrize("name", list_tasks())
def test_gold_scores_and_other_gold_does_not(name: str) -> None:
    task = get_task(name)
    examples = task.generate(60, "test", seed=5)
    for a, b in itertools.pairwise(examples):
        assert task.score(a.prompt, a.answer)
        if a.final != b.final:
            assert not task.score(a.prompt, b.answer)


def test_steps() -> None:
    chain = get_task("arith_chain")
    assert chain.steps("1+2=3\n\n 3*2=6 \nAnswer: 6") == ["1+2=3", "3*2=6"]
    assert chain.steps("Answer: 6") == []
    assert chain.steps("1+2=3") == ["1+2=3"]
