"""Flows: YAML block pipelines parse, run with per-block counts, do not depend on how samples
are chunked, and a flow that keeps nothing says which filter emptied it."""

from __future__ import annotations

import re

import pytest

from burnish.errors import ConfigError
from burnish.sdg.flow import BUILTIN_FLOWS, Block, load_flow, parse_reply
from burnish.tasks import get_task

ADD = get_task("addition")


def fake_teacher(requests):
    """A rule-based teacher for the freeform flow on addition: questions from the seed's
    numbers, ratings by the checker, answers right for even sums only."""
    out = []
    for r in requests:
        prompt = r["messages"][-1]["content"]
        seed = r["seed"]
        if "Write one new question" in prompt:
            texts = [f"add {seed % 50 + k}+{k * 7 % 13}" for k in range(r["n"])]
        elif "Rate this question" in prompt:
            q = re.search(r"Question: (.*)", prompt).group(1)
            texts = ["3" if q.startswith("add ") else "1"]
        elif "Rate the answer" in prompt:
            q = re.search(r"Question: (.*)", prompt).group(1)
            a = re.search(r"Answer: (.*)", prompt, re.S).group(1)
            texts = ["3" if ADD.score(q, a) else "1"]
        else:  # answers
            q = re.search(r"Question: (.*)", prompt).group(1)
            gold = ADD.solve(q)
            wrong = int(gold.final) % 2 == 1
            texts = [f"Answer: {int(gold.final) + 1}" if wrong else gold.answer]
        out.append(texts)
    return out


def seed_rows(n: int) -> list[dict]:
    seeds = "\n".join(f"Q: {e.prompt}\nA: {e.answer}" for e in ADD.generate(5, "train", seed=1))
    return [{"_sample": f"addition#{i}", "task_description": "add numbers",
             "seed_examples": seeds} for i in range(n)]  # fmt: skip


def test_every_builtin_flow_loads() -> None:
    for name in BUILTIN_FLOWS:
        flow = load_flow(name)
        assert flow.blocks and flow.description


def test_freeform_flow_counts_every_block() -> None:
    flow = load_flow("freeform_skill")
    rows, stats = flow.run(seed_rows(4), fake_teacher)
    assert stats.rows_in["questions"] == 4 and stats.rows_out["questions"] == 12
    assert stats.rows_out["question_filter"] == 12
    kept = stats.rows_out["pair_filter"]
    assert 0 < kept < stats.rows_in["pair_filter"] and len(rows) == kept
    assert all(ADD.score(r["question"], r["answer"]) for r in rows)  # the critic removed the rest
    assert stats.pass_rates()["pair_filter"] == kept / stats.rows_in["pair_filter"]


def test_output_does_not_depend_on_chunking() -> None:
    flow = load_flow("freeform_skill")
    rows = seed_rows(6)
    whole, _ = flow.run(rows, fake_teacher)
    parts = flow.run(rows[:2], fake_teacher)[0] + flow.run(rows[2:], fake_teacher)[0]
    assert whole == parts


def test_a_flow_that_keeps_nothing_names_the_filter() -> None:
    flow = load_flow("freeform_skill")

    def harsh(requests):
        return [["1"] if "Rate" in r["messages"][-1]["content"] else ["add 1+1"] * r["n"]
                for r in requests]  # fmt: skip

    rows, stats = flow.run(seed_rows(3), harsh)
    assert rows == []
    err = flow.explain_empty(stats, "compositional_skills/arithmetic/addition")
    msg = str(err)
    assert "filter 'question_filter' (question_rating >= 2) kept 0 of the 9 rows" in msg
    assert "--num-samples" in msg and "nothing was written" in msg


def test_parsers() -> None:
    lines = Block("b", "llm", prompt="p", parse="lines", output="q")
    assert parse_reply("1. first\n- second\n\n3) third", lines) == [
        {"q": "first"}, {"q": "second"}, {"q": "third"}]  # fmt: skip
    rating = Block("b", "llm", prompt="p", parse="rating", output="r")
    assert parse_reply("Rating: 3 of 3", rating) == [{"r": 3}] and parse_reply("good", rating) == []
    scaled = load_flow("knowledge").blocks[2]  # the built-in ratings are on a 1-3 scale
    assert scaled.parse == "rating" and scaled.scale == [1, 3]
    assert parse_reply("There are 4 telescopes", scaled) == []  # no number on the scale
    assert parse_reply("Of the 12 facts, I rate it 2.", scaled) == [{scaled.output: 2}]
    qa = load_flow("knowledge").blocks[0]
    text = "Question: Where?\nAnswer: Vell.\nQuestion: When?\nAnswer: In 1962,\nby Marrow."
    assert parse_reply(text, qa) == [
        {"question": "Where?", "answer": "Vell."},
        {"question": "When?", "answer": "In 1962,\nby Marrow."},
    ]


def test_bad_flow_files(tmp_path) -> None:
    bad = tmp_path / "flow.yaml"
    bad.write_text("blocks:\n  - {name: a, type: sampler}\n")
    with pytest.raises(ConfigError, match="use llm, filter or dedupe"):
        load_flow(bad)
    bad.write_text("blocks:\n  - {name: a, type: llm, prompt: 'x {missing}', output: y}\n")
    flow = load_flow(bad)
    with pytest.raises(ConfigError, match="'missing'"):
        flow.run([{"_sample": "s#0"}], fake_teacher)
    with pytest.raises(ConfigError, match="no such flow"):
        load_flow("nonexistent_flow")
    bad.write_text("blocks:\n  - {name: a, type: llm, prompt: x, parse: rating, output: r, "
                   "scale: [3, 1]}\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"scale must be \[low, high\]"):
        load_flow(bad)
