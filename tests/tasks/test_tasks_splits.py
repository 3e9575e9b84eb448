"""Train/test splits: disjointness, determinism, uniqueness and exhaustion errors."""

from __future__ import annotations

import pytest

from burnish.errors import TaskError
from burnish.tasks import get_task, list_tasks, split_of


def test_split_of_is_stable_and_roughly_balanced() -> None:
    prompts = [f"add {a}+{b}" for a in range(40) for b in range(40)]
    splits = [split_of("addition", p) for p in prompts]
    assert splits == [split_of("addition", p) for p in prompts]
    assert set(splits) == {"train", "test"}
    assert 0.15 < splits.count("test") / len(splits) < 0.25
    assert all(split_of("addition", p, test_fraction=0.0) == "train" for p in prompts)
    assert all(split_of("addition", p, test_fraction=1.0) == "test" for p in prompts)


@pytest.mark.parametrize("name", list_tasks())
def test_train_and_test_are_disjoint(name: str) -> None:
    task = get_task(name)
    train = {e.prompt for s in (0, 1) for e in task.generate(2000, "train", seed=s)}
    test = {e.prompt for s in (0, 1) for e in task.generate(300, "test", seed=s)}
    assert train and test
    assert not train & test
    assert all(split_of(name, p) == "train" for p in train)
    assert all(split_of(name, p) == "test" for p in test)


def test_splits_disjoint_across_knob_settings() -> None:
    train = {e.prompt for e in get_task("addition", digits=1).generate(500, "train")}
    test = {e.prompt for e in get_task("addition", digits=2).generate(300, "test")}
    assert not train & test


@pytest.mark.parametrize("name", list_tasks())
def test_generate_is_deterministic(name: str) -> None:
    task = get_task(name)
    assert task.generate(50, "train", seed=3) == task.generate(50, "train", seed=3)
    assert task.generate(50, "train", seed=3) != task.generate(50, "train", seed=4)
    assert task.generate(50, "test", seed=3) == get_task(name).generate(50, "test", seed=3)


def test_generate_depends_on_knobs() -> None:
    assert get_task("sorting").generate(20) != get_task("sorting", max_len=7).generate(20)


@pytest.mark.parametrize("name", list_tasks())
def test_test_split_is_unique_by_default(name: str) -> None:
    prompts = [e.prompt for e in get_task(name).generate(300, "test", seed=0)]
    assert len(prompts) == 300 == len(set(prompts))


def test_train_allows_repeats_unless_unique() -> None:
    task = get_task("addition", digits=1)  # about 80 train prompts exist
    assert len(task.generate(200, "train")) == 200
    unique = [e.prompt for e in task.generate(50, "train", unique=True)]
    assert len(unique) == len(set(unique)) == 50


def test_exhausted_space_raises() -> None:
    with pytest.raises(TaskError, match="found only") as info:
        get_task("addition", digits=1).generate(1000, "test")
    assert "digits" in str(info.value)


def test_generate_zero() -> None:
    assert get_task("reversal").generate(0, "test") == []


@pytest.mark.parametrize("split", ["val", "Train", ""])
def test_unknown_split(split: str) -> None:
    with pytest.raises(TaskError, match="split"):
        get_task("addition").generate(5, split)


def test_negative_n() -> None:
    with pytest.raises(TaskError):
        get_task("addition").generate(-1)
