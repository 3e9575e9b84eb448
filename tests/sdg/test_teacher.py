"""The teacher client against ``burnish serve`` in a subprocess: concurrent requests, the
response cache (a rerun asks the server nothing), a built-in flow over the real HTTP path,
and a clear error when no server answers."""

from __future__ import annotations

import pytest
from tests.sdg.test_flow import seed_rows
from tests.serve.conftest import MODEL, free_port, subprocess_server

from burnish.errors import DataError
from burnish.sdg.flow import load_flow
from burnish.sdg.teacher import Teacher, TeacherSettings

PROMPTS = [f"add {a}+{b}" for a, b in [(2, 3), (11, 4), (7, 8), (20, 5), (6, 6), (9, 1)]]


def requests() -> list[dict]:
    return [{"messages": [{"role": "user", "content": p}], "temperature": 0.0,
             "max_tokens": 12, "seed": i} for i, p in enumerate(PROMPTS)]  # fmt: skip


def test_teacher_over_http_with_its_cache(tmp_path) -> None:
    with subprocess_server() as server:
        teacher = Teacher(TeacherSettings(server.base, cache_dir=tmp_path, concurrency=3))
        assert teacher.model == MODEL  # the first model the server lists
        first = teacher.chat_many(requests())
        assert teacher.misses == len(PROMPTS) and teacher.hits == 0
        assert all(len(t) == 1 and t[0].startswith("Answer:") for t in first)
        rows, stats = load_flow("freeform_skill").run(seed_rows(2), teacher.chat_many)
        assert stats.rows_in["questions"] == 2 and stats.rows_out["questions"] == 6
        assert len(rows) == stats.rows_out["pair_filter"]  # what the zoo policy's ratings kept
        too_long = [{"role": "user", "content": "1+" * 300}]  # over the policy's 512 tokens
        before = teacher.over_context  # the flow's long answer prompts may be over it too
        assert teacher.chat(too_long, max_tokens=8) == [] and teacher.over_context == before + 1
    again = Teacher(TeacherSettings(server.base, model=MODEL, cache_dir=tmp_path))
    assert again.chat_many(requests()) == first  # the server is gone: every reply cached
    assert again.hits == len(PROMPTS) and again.misses == 0


def test_no_server_is_one_clear_error(tmp_path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(DataError, match="cannot reach the teacher"):
        Teacher(TeacherSettings(url, cache_dir=tmp_path, timeout=2))
