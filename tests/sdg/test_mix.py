"""``burnish.sdg.mix``: exact proportions (skills per leaf, RAFT share and golden rate,
replay), cross-leaf dedupe, phase-07 rows with their chunk and ``unmask``, determinism."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from burnish.errors import ConfigError, DataError, OutputExistsError
from burnish.io import read_jsonl, write_jsonl
from burnish.sdg.mix import MixSettings, knowledge_prompt, mix

CHUNKS = ["The tower is red.", "The lake is deep.", "The road is long.", "The hill is steep."]


def _skill(leaf: str, i: int) -> dict:
    return {
        "id": f"{leaf}#{i}",
        "messages": [{"role": "user", "content": f"q{i} of {leaf}"},
                     {"role": "assistant", "content": f"a{i}"}],
        "metadata": {"leaf": leaf, "kind": "freeform_skill"},
    }  # fmt: skip


def _knowledge(i: int) -> dict:
    return {
        "id": f"facts#{i}",
        "messages": [{"role": "user", "content": f"What is fact {i}?"},
                     {"role": "assistant", "content": f"Fact {i}."}],
        "metadata": {"leaf": "facts", "kind": "knowledge", "chunk": CHUNKS[i % 4]},
    }  # fmt: skip


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    out = tmp_path / "gen"
    write_jsonl(out / "leaves" / "skills" / "big.jsonl", [_skill("big", i) for i in range(50)])
    small = [_skill("small", i) for i in range(12)]
    small.append({**_skill("big", 3), "metadata": {"leaf": "small", "kind": "freeform_skill"}})
    write_jsonl(out / "leaves" / "small.jsonl", small)
    write_jsonl(out / "leaves" / "facts.jsonl", [_knowledge(i) for i in range(4)])
    return out


def test_proportions_are_exact(generated: Path, tmp_path: Path) -> None:
    out = tmp_path / "mix"
    report = mix([generated], out, MixSettings(per_leaf=30, replay=0.5))
    p07, p10 = read_jsonl(out / "phase07.jsonl"), read_jsonl(out / "phase10.jsonl")
    assert report["duplicates_dropped"] == 1  # small's copy of big#3
    by_set: dict[str, list[dict]] = {}
    for r in p10:
        by_set.setdefault(r["metadata"]["set"], []).append(r)
    skills = by_set["skills"]
    assert sum(r["metadata"]["leaf"] == "big" for r in skills) == 30
    assert sum(r["metadata"]["leaf"] == "small" for r in skills) == 30
    big_ids = [r["id"] for r in skills if r["metadata"]["leaf"] == "big"]
    assert len(set(big_ids)) == 30  # a subset of big, no repeats
    small_counts: dict[str, int] = {}
    for r in skills:
        if r["metadata"]["leaf"] == "small":
            key = r["messages"][0]["content"]
            small_counts[key] = small_counts.get(key, 0) + 1
    assert len(small_counts) == 12 and set(small_counts.values()) == {2, 3}  # 30 = 12+12+6
    # RAFT: every knowledge row at least once, and at least 3% of the skill rows
    assert len(by_set["raft"]) == max(4, math.ceil(0.03 * 60)) == 4
    assert len(p07) == 4 and all(r["unmask"] for r in p07)
    assert all(r["messages"][0]["content"].startswith("Document:\n") for r in p07)
    assert all(r["metadata"]["chunk"] in r["messages"][0]["content"] for r in p07)
    assert len(by_set["replay"]) == 2 and all(r["unmask"] for r in by_set["replay"])
    assert not any(r["unmask"] for r in skills + by_set["raft"])
    ids = [r["id"] for r in p07 + p10]
    assert len(ids) == len(set(ids))
    assert all(set(r) == {"id", "messages", "metadata", "unmask"} for r in p07 + p10)


def test_knowledge_upsampled_to_three_percent_and_golden_rate(
    generated: Path, tmp_path: Path
) -> None:
    s = MixSettings(per_leaf=2000, distractors=3, golden_p=0.4, replay=0.0)
    report = mix([generated], tmp_path / "mix", s)
    raft = [r for r in read_jsonl(tmp_path / "mix" / "phase10.jsonl")
            if r["metadata"]["set"] == "raft"]  # fmt: skip
    assert len(raft) == math.ceil(0.03 * 4000) == 120 == report["phase10"]["raft"]
    golden = 0
    for r in raft:
        user = r["messages"][0]["content"]
        assert user.count("Document:\n") == 3
        has = r["metadata"]["chunk"] in user
        assert has == r["metadata"]["golden"]
        golden += has
        i = r["id"].split("#")[1].split("@")[0]
        assert user.endswith(f"\n\nWhat is fact {i}?")
    assert golden == report["phase10"]["raft_with_golden"]
    assert 0.25 < golden / len(raft) < 0.55  # p = 0.4 over 120 draws


def test_same_seed_same_files_and_outputs_kept(generated: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    mix([generated], a, MixSettings(seed=3))
    mix([generated], b, MixSettings(seed=3))
    for name in ("phase07.jsonl", "phase10.jsonl"):
        assert (a / name).read_text() == (b / name).read_text()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        mix([generated], a, MixSettings(seed=4))
    assert (a / "phase10.jsonl").read_text() == (b / "phase10.jsonl").read_text()
    mix([generated], a, MixSettings(seed=4), overwrite=True)
    assert (a / "phase10.jsonl").read_text() != (b / "phase10.jsonl").read_text()


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no leaves/"):
        mix([tmp_path], tmp_path / "out", MixSettings())
    write_jsonl(tmp_path / "x.jsonl", [{"messages": []}])
    with pytest.raises(DataError, match=r"x\.jsonl:1: not a generated row"):
        mix([tmp_path / "x.jsonl"], tmp_path / "out", MixSettings())
    with pytest.raises(ConfigError, match="golden-p"):
        MixSettings(golden_p=1.5)


def test_knowledge_prompt_puts_documents_first() -> None:
    assert knowledge_prompt(["A.", "B."], "Q?") == "Document:\nA.\n\nDocument:\nB.\n\nQ?"
