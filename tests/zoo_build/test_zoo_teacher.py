"""The zoo teacher's data: the built-in flows' own prompts, labels from the task checkers; and
a short build end to end (train, measure, card)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from burnish.sdg.flow import load_flow, parse_reply
from burnish.tasks import get_task, list_tasks
from burnish.zoo_build import TeacherSpec, build_zoo
from burnish.zoo_build.teacher_data import (
    corrupt_question,
    knowledge_items,
    pair_label,
    passages,
    question_label,
    skill_items,
)


def _flow_prompts(name: str) -> dict[str, str]:
    return {b.name: b.prompt for b in load_flow(name).blocks if b.type == "llm"}


def test_skill_items_are_the_flow_prompts_with_checker_labels() -> None:
    prompts = _flow_prompts("freeform_skill")
    for name in list_tasks():
        task = get_task(name)
        items = skill_items(name, 40, "train", 0)
        assert {x.block for x in items} == {"questions", "question_rating", "answers",
                                            "pair_rating"}  # fmt: skip
        for x in items:
            head = prompts[x.block].split("{")[0]  # "Task: "
            assert x.prompt.startswith(head) and x.prompt.endswith(
                prompts[x.block].rsplit("}", 1)[1]
            )
            if x.block == "questions":
                assert question_label(task, x.target) == 3
            elif x.block == "answers":
                assert x.target == task.solve(x.question).answer
            else:
                assert x.target in {"1", "2", "3"}
        ratings = [x.target for x in items if x.block == "question_rating"]
        assert "1" in ratings and "3" in ratings  # corrupted questions are among them


def test_labels_follow_the_checkers() -> None:
    task = get_task("arith_chain")
    gold = task.solve("chain 2*7+8*3")
    assert pair_label(task, gold.prompt, gold.answer) == 3
    assert pair_label(task, gold.prompt, "Answer: 66") == 2  # right final, steps left out
    assert pair_label(task, gold.prompt, gold.answer.replace("66", "67")) == 1
    assert question_label(task, "chain 2*7+8*3") == 3
    assert question_label(task, "chain 2*7+") == 1
    rng = random.Random(0)
    others = ["add 1+2"]
    damaged = [corrupt_question("chain 2*7+8*3", others, rng) for _ in range(40)]
    assert any(question_label(task, q) == 1 for q in damaged)


def test_knowledge_items_parse_as_the_flow_parses_them() -> None:
    chunks = passages(300)
    assert len(chunks) > 50 and all(len(c) <= 300 for c in chunks)
    items = knowledge_items(chunks[:40], 32, 0)
    blocks = {b.name: b for b in load_flow("knowledge").blocks if b.type == "llm"}
    qa = [x for x in items if x.block == "qa_pairs"]
    assert qa
    for x in qa:
        assert len(parse_reply(x.target, blocks["qa_pairs"])) == x.target.count("Question: ") >= 1
    for x in items:
        if x.block == "faithfulness":
            answer = x.prompt.split("\nAnswer: ", 1)[1]
            passage = x.prompt.split("Passage:\n", 1)[1].split("\nQuestion:", 1)[0]
            assert (x.target == "3") == (" ".join(answer.split()) in " ".join(passage.split()))


@pytest.mark.filterwarnings("ignore")
def test_a_short_build_writes_a_card_with_its_quality(tmp_path: Path) -> None:
    spec = TeacherSpec(per_task=8, knowledge=8, steps=2, batch=4, eval_items=1, max_seq_len=1024)
    (card,) = build_zoo(["teacher"], tmp_path, progress=False, teacher=spec)
    saved = json.loads((tmp_path / "teacher" / "card.json").read_text())
    assert saved == json.loads(json.dumps(card))
    assert set(card["accuracy"]) == set(list_tasks())
    assert {"answer_accuracy", "question_valid", "pair_rating_accuracy"} <= set(
        card["teacher"]["addition"]
    )
    assert "faithfulness_accuracy" in card["teacher"]["knowledge"]
    assert (
        json.loads((tmp_path / "teacher" / "config.json").read_text())["max_position_embeddings"]
        == spec.context
    )
    assert "Held-out quality" in (tmp_path / "teacher" / "README.md").read_text()
