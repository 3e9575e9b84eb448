"""``generate``: a taxonomy's leaves through their flows into chat JSONL, resumable with
exactly the uninterrupted rows, knowledge from chunked (and rewritten) documents, and an
empty leaf is an error that names the filter while the other leaves are kept."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from burnish.io import read_jsonl
from burnish.sdg import EmptyResultError, read_taxonomy
from burnish.sdg.generate import GenerateSettings, generate, leaf_file

EXAMPLES = Path(__file__).parents[2] / "examples" / "taxonomy"


class FakeTeacher:
    """Answers every built-in flow's prompts by rule; ``fail_after`` requests raise."""

    base, model = "http://fake/v1", "fake"

    def __init__(self, fail_after: int | None = None, harsh: bool = False) -> None:
        self.calls, self.fail_after, self.harsh = 0, fail_after, harsh

    def reply(self, prompt: str, seed: int, n: int) -> list[str]:
        if "Rate" in prompt or "1 (no)" in prompt:
            return ["1" if self.harsh else "3"]
        if "Write one new question" in prompt:
            return [f"add {seed % 40 + k}+{k + 1}" for k in range(n)]
        if "question and answer pairs" in prompt:
            return [f"Question: What is fact {seed % 7}?\nAnswer: Fact {seed % 7} holds."]
        if "Answer the question" in prompt:
            q = re.search(r"Question: add (\d+)\+(\d+)", prompt)
            return [f"Answer: {int(q.group(1)) + int(q.group(2))}" if q else "Answer: 0"]
        return [f"rewrite {seed % 100}: " + prompt[-60:]]  # document augmentation

    def chat_many(self, requests):
        out = []
        for r in requests:
            self.calls += 1
            if self.fail_after is not None and self.calls > self.fail_after:
                raise KeyboardInterrupt  # a kill in the middle of a chunk
            out.append(self.reply(r["messages"][-1]["content"], r["seed"], r["n"]))
        return out


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture
def leaves(tmp_path: Path):
    root = tmp_path / "taxonomy"
    shutil.copytree(EXAMPLES, root)
    return read_taxonomy(root)


def skills(leaves):
    return [leaf for leaf in leaves if leaf.name.endswith(("addition", "chain"))]


def test_skill_rows_are_chat_jsonl_with_metadata(leaves, tmp_path: Path) -> None:
    out = tmp_path / "sdg"
    report = generate(skills(leaves), FakeTeacher(), out, GenerateSettings(rounds=1))
    rows = read_jsonl(leaf_file(out, skills(leaves)[0]))
    assert len(rows) == 15  # 5 seeds x 3 questions, every rating 3
    row = rows[0]
    assert set(row) == {"id", "messages", "metadata"}
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    assert row["metadata"]["flow"] == "freeform_skill" and row["metadata"]["pair_rating"] == 3
    assert report["rows"] == 30 and json.loads((out / "generate.json").read_text())["rows"] == 30
    assert report["leaves"][row["metadata"]["leaf"]]["pass_rates"]["pair_filter"] == 1.0


def test_killed_run_resumes_to_exactly_the_uninterrupted_rows(leaves, tmp_path: Path) -> None:
    settings = GenerateSettings(rounds=2, chunk=3)
    whole = tmp_path / "whole"
    generate(skills(leaves), FakeTeacher(), whole, settings)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        generate(skills(leaves), FakeTeacher(fail_after=70), part, settings)
    assert (part / "progress.json").is_file()
    with pytest.raises(Exception, match="--resume"):
        generate(skills(leaves), FakeTeacher(), part, settings)
    generate(skills(leaves), FakeTeacher(), part, settings, resume=True)
    for leaf in skills(leaves):
        assert leaf_file(part, leaf).read_text() == leaf_file(whole, leaf).read_text()
        assert not leaf_file(part, leaf, partial=True).exists()


def test_an_empty_leaf_names_its_filter_and_the_rest_is_kept(leaves, tmp_path: Path) -> None:
    out = tmp_path / "sdg"
    with pytest.raises(EmptyResultError, match="filter 'question_filter'") as e:
        generate(skills(leaves)[:1], FakeTeacher(harsh=True), out, GenerateSettings(rounds=1))
    assert "kept 0 of the 15 rows" in str(e.value)
    assert not leaf_file(out, skills(leaves)[0]).exists()
    assert json.loads((out / "generate.json").read_text())["rows"] == 0


def test_knowledge_from_chunks_and_rewrites(leaves, tmp_path: Path) -> None:
    knowledge = [leaf for leaf in leaves if leaf.kind == "knowledge"]
    out = tmp_path / "sdg"
    settings = GenerateSettings(chunk_tokens=60)
    report = generate(knowledge, FakeTeacher(), out, settings, count=words)
    rows = read_jsonl(leaf_file(out, knowledge[0]))
    sources = {r["metadata"]["source"] for r in rows}
    assert sources == {"original", "detailed_summary", "atomic_facts", "extractive_summary"}
    originals = [r for r in rows if r["metadata"]["source"] == "original"]
    assert all(words(r["metadata"]["chunk"]) <= 60 for r in originals)
    assert report["leaves"][knowledge[0].name]["rows"] == len(rows)
