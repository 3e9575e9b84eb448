"""File helpers: JSONL errors name file and line; atomic writes leave nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from burnish.errors import BurnishError, DataError
from burnish.io import append_jsonl, atomic_dir, atomic_write_text, read_jsonl, write_jsonl


def test_jsonl_round_trip(tmp_path: Path) -> None:
    rows = [{"a": 1}, {"b": "é\n"}, {}]
    path = write_jsonl(tmp_path / "sub" / "x.jsonl", rows)
    assert read_jsonl(path) == rows
    append_jsonl(path, {"c": [1, 2]})
    assert read_jsonl(path)[-1] == {"c": [1, 2]}
    path.write_text(path.read_text() + "\n   \n")  # blank lines are skipped
    assert len(read_jsonl(path)) == 4


def test_malformed_line_names_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"b": 2}\n{"c": \n{"d": 4}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:3: not valid JSON") as e:
        read_jsonl(path)
    assert isinstance(e.value, BurnishError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("line", ["[1, 2]", '"text"', "3", "null"])
def test_non_object_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n' + line + "\n")
    with pytest.raises(DataError, match=r"x\.jsonl:2: expected a JSON object"):
        read_jsonl(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such data file"):
        read_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="no such data file"):
        read_jsonl(tmp_path)  # a directory is not a data file


def test_atomic_write_text(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "a" / "f.txt", "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["f.txt"]


def test_atomic_dir_success_replaces(tmp_path: Path) -> None:
    target = tmp_path / "d"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as tmp:
        assert tmp != target and tmp.parent == tmp_path
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").exists()  # untouched until the block finishes
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_atomic_dir_failure_keeps_target(tmp_path: Path, exc: type[BaseException]) -> None:
    target = tmp_path / "d"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(exc), atomic_dir(target) as tmp:
        (tmp / "half.txt").write_text("half")
        raise exc()
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "fresh"):
        raise RuntimeError
    assert not (tmp_path / "fresh").exists()
