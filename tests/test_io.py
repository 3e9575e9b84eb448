"""File helpers: JSONL errors name file and line; atomic writes leave nothing half-written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from burnish.errors import BurnishError, DataError, OutputExistsError
from burnish.io import (
    MODEL_WEIGHT_FILES,
    append_jsonl,
    atomic_dir,
    atomic_file,
    atomic_write_text,
    check_output_dir,
    check_output_file,
    read_jsonl,
    remove_owned,
    write_jsonl,
)


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


def test_atomic_dir_keeps_files_it_did_not_write(tmp_path: Path) -> None:
    """Landing in an existing folder replaces same-named entries (and stale weights) only."""
    target = tmp_path / "d"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    (target / "config.json").write_text("old")
    (target / "model-00001-of-00002.safetensors").write_text("old shard")
    with atomic_dir(target, stale=MODEL_WEIGHT_FILES) as tmp:
        assert tmp != target and tmp.parent == tmp_path
        (tmp / "config.json").write_text("new")
        (tmp / "model.safetensors").write_text("new weights")
        assert (target / "config.json").read_text() == "old"  # untouched until the end
    assert sorted(p.name for p in target.iterdir()) == [
        "config.json",
        "model.safetensors",
        "notes.txt",
    ]
    assert (target / "config.json").read_text() == "new"
    assert (target / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_outputs_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        f = atomic_write_text(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "a").write_text("a")
        with atomic_file(tmp_path / "g.bin") as tmp:
            tmp.write_bytes(b"1")
    finally:
        os.umask(old)
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "g.bin").stat().st_mode) == 0o644


def test_check_output_refuses_what_exists(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        check_output_file(tmp_path / "f.txt")
    assert check_output_file(tmp_path / "f.txt", overwrite=True) == tmp_path / "f.txt"
    with pytest.raises(OutputExistsError, match="is a folder"):
        check_output_file(tmp_path / "d", overwrite=True)
    with pytest.raises(OutputExistsError, match="--resume to continue it, --overwrite"):
        check_output_dir(tmp_path / "d", resume=False)
    with pytest.raises(OutputExistsError, match="is a file"):
        check_output_dir(tmp_path / "f.txt", overwrite=True)
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty")
    check_output_dir(tmp_path / "new")
    check_output_dir(tmp_path / "d", overwrite=True)


def test_remove_owned_leaves_other_files(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text("")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "x").write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert remove_owned(tmp_path, ("metrics.jsonl", "state")) == ["metrics.jsonl", "state"]
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_non_utf8_jsonl_names_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"latin1\.jsonl:2: not UTF-8 text \(byte 0xe9"):
        read_jsonl(path)


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
