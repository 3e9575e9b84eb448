"""Build the zoo's SDG teacher: ``base`` with a longer context, fine-tuned on the built-in
flows' prompts (:mod:`burnish.zoo_build.teacher_data`), measured on held-out prompts.

The card's ``accuracy`` is the teacher's answer accuracy per task under the ``answers``
prompt (what ``burnish zoo list`` shows); ``teacher`` holds the rest: how often a generated
question parses, how often each rating equals the checker's label, how often the keep
decision (rating >= 2, the flows' threshold) agrees with the checker's, and for knowledge
how often a reply parses into question/answer pairs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from burnish.errors import ConfigError
from burnish.eval.evaluate import evaluate
from burnish.eval.generate import generate_chat
from burnish.io import check_output_dir
from burnish.models.io import load_model
from burnish.models.zoo import ZOO_DIR, resolve_model
from burnish.progress import progress_bar
from burnish.sdg.flow import Block, load_flow, parse_reply
from burnish.tasks import get_task, list_tasks
from burnish.zoo_build.cards import build_facts, model_facts, save_with_card
from burnish.zoo_build.lm import finetune_on_rows
from burnish.zoo_build.specs import CHECK_SAMPLE, ZOO_RECOMMENDED, TeacherSpec
from burnish.zoo_build.teacher_data import (
    AUGMENT_FLOW,
    KNOWLEDGE_FLOW,
    SKILL_FLOW,
    TeacherItem,
    knowledge_items,
    passages,
    question_label,
    skill_items,
    teacher_rows,
)

__all__ = ["build_teacher", "measure_teacher", "render_teacher_card", "teacher_card"]

_EVAL_BATCH = 32


def _flow_blocks() -> dict[str, Block]:
    return {
        b.name: b
        for f in (SKILL_FLOW, KNOWLEDGE_FLOW, AUGMENT_FLOW)
        for b in load_flow(f).blocks
        if b.type == "llm"
    }


def _replies(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, items: list[TeacherItem], progress: bool
) -> list[str]:
    """The teacher's reply to each item, decoded as the flow block says (questions sampled
    at the block's temperature, the rest greedy), at most 128 new tokens."""
    blocks, out = _flow_blocks(), [""] * len(items)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, x in enumerate(items):
        groups[x.block].append(i)
    batches = [
        (name, idx[k : k + _EVAL_BATCH])
        for name, idx in groups.items()
        for k in range(0, len(idx), _EVAL_BATCH)
    ]
    with progress_bar(len(batches), "measuring the teacher", enabled=progress) as advance:
        for name, idx in batches:
            _reply_batch(model, tok, blocks[name], [items[i] for i in idx], out, idx)
            advance()
    return out


def _reply_batch(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    block: Block,
    items: list[TeacherItem],
    out: list[str],
    idx: list[int],
) -> None:
    replies = generate_chat(
        model,
        tok,
        [x.prompt for x in items],
        max_new_tokens=min(block.max_tokens, 128),
        temperature=block.temperature,
        seed=len(idx),
    )
    for i, r in zip(idx, replies, strict=True):
        out[i] = r[0]


def _rating(block: Block, reply: str) -> int | None:
    parsed = parse_reply(reply, block)
    return parsed[0][block.output] if parsed else None


def measure_teacher(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    tasks: list[str],
    n: int,
    chunks: list[str],
    seed: int = 100,
    progress: bool = False,
) -> dict:
    """The teacher's quality on ``n`` held-out items per skill block and task (test-split
    problems) and per knowledge block (see the module doc)."""
    items = [x for t in tasks for x in skill_items(t, 4 * n, "test", seed)]
    items += knowledge_items(chunks, 8 * n, seed)
    replies = _replies(model, tok, items, progress)
    blocks = _flow_blocks()
    tally: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for x, reply in zip(items, replies, strict=True):
        t = tally[x.task]
        if x.block == "answers":
            t["answer_accuracy"].append(get_task(x.task).score(x.question, reply))
        elif x.block == "questions":
            t["question_valid"].append(question_label(get_task(x.task), reply) == 3)
        elif x.block == "qa_pairs":
            t["qa_pairs_parsed"].append(bool(parse_reply(reply, blocks[x.block])))
        elif blocks[x.block].parse == "rating":
            got, want = _rating(blocks[x.block], reply), int(x.target)
            t[f"{x.block}_accuracy"].append(got == want)
            t[f"{x.block}_keep_agreement"].append(((got or 0) >= 2) == (want >= 2))
    return {
        task: {k: round(sum(v) / len(v), 4) for k, v in sorted(m.items())}
        for task, m in tally.items()
    }


def render_teacher_card(card: dict) -> str:
    """The Markdown card of the zoo teacher."""
    spec, quality = card["spec"], card["teacher"]
    keys = sorted({k for m in quality.values() for k in m})
    lines = [
        f"# {card['name']}",
        "",
        card["description"],
        "",
        f"- architecture: {card['architecture']} ({card['parameters']:,} parameters), "
        f"context {spec['context']} tokens",
        f"- parent: {spec['parent']}",
        f"- data: {spec['per_task']} items per task over the freeform_skill flow's four "
        f"blocks, {spec['knowledge']} knowledge items (knowledge and document_augmentation "
        "flows, on pydoc_data.topics prose); labels from the tasks' checkers",
        f"- training: {spec['steps']} steps x {spec['batch']} items, lr {spec['lr']} "
        f"(burnish SFT recipe); final loss {card['final_loss']:.4f}",
        f"- build time: {card['build_seconds']} s on {card['build_machine']}",
        "- serve it: `burnish serve teacher`; use it: `burnish generate TAXONOMY --teacher "
        "http://127.0.0.1:PORT/v1 -o OUT`",
        "",
        f"## Held-out quality ({spec['eval_items']} test-split items per block and task; "
        "ratings greedy, questions sampled)",
        "",
        "| task | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
        *[
            f"| {t} | " + " | ".join(f"{m[k]:.3f}" if k in m else "-" for k in keys) + " |"
            for t, m in quality.items()
        ],
    ]
    return "\n".join(lines) + "\n"


def teacher_card(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    spec: TeacherSpec,
    final_loss: float,
    build: dict,
    chunks: list[str],
    progress: bool = False,
) -> dict:
    """The teacher's card: plain greedy accuracy on the zoo's check sample (as every zoo card,
    so ``burnish zoo list`` and the zoo tests read it alike) and its held-out quality as a
    teacher (see the module doc)."""
    results = evaluate(model, tok, list_tasks(), CHECK_SAMPLE, progress=progress)
    quality = measure_teacher(model, tok, list(spec.tasks), spec.eval_items, chunks,
                              progress=progress)  # fmt: skip
    return {
        "name": spec.name,
        "description": (
            "SDG teacher for the zoo skills: `base` fine-tuned on the built-in flows' prompts "
            "(a new question from seed examples, an answer, 1-3 ratings of questions and "
            "question/answer pairs; knowledge question/answer pairs, their three filter "
            "ratings and the document rewrites), with targets from the task generators and "
            "checkers. Honest and imperfect: its held-out quality is below."
        ),
        **model_facts(model),
        "spec": asdict(spec),
        "final_loss": final_loss,
        **build,
        "check_sample": {"n": CHECK_SAMPLE, "split": "test", "seed": 0, "decoding": "greedy"},
        "accuracy": {k: v.accuracy for k, v in results.items()},
        "teacher": quality,
        "recommended": dict(ZOO_RECOMMENDED),
    }


def build_teacher(
    spec: TeacherSpec, out_root: Path = ZOO_DIR, progress: bool = True, overwrite: bool = False
) -> dict:
    """Train, measure and save the zoo teacher; returns its card."""
    check_output_dir(Path(out_root) / spec.name, overwrite=overwrite, what="zoo model folder")
    parent = Path(out_root) / spec.parent
    if not (parent / "config.json").is_file():
        parent = resolve_model(spec.parent)
        if not (parent / "config.json").is_file():
            raise ConfigError(f"zoo model {spec.name!r} needs {spec.parent!r} built first")
    t0 = time.time()
    model, tok = load_model(parent)
    model.config.max_position_embeddings = spec.context
    tok.model_max_length = spec.context
    chunks = passages(spec.passage_tokens)
    cut = len(chunks) * 4 // 5  # train passages apart from the measured ones
    items = teacher_rows(
        list(spec.tasks), spec.per_task, spec.knowledge, "train", spec.seed, chunks[:cut]
    )
    rows = (x.to_row() for x in items)
    final_loss = finetune_on_rows(model, tok, spec.name, rows, steps=spec.steps, batch=spec.batch,
                                  lr=spec.lr, seed=spec.seed, max_seq_len=spec.max_seq_len,
                                  progress=progress)  # fmt: skip
    model.eval()
    card = teacher_card(model, tok, spec, final_loss, build_facts(t0), chunks[cut:], progress)
    save_with_card(model, tok, Path(out_root) / spec.name, card, render_teacher_card)
    return card
