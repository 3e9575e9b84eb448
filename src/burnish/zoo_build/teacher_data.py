"""What the zoo teacher learns from: the built-in SDG flows' own prompts, filled from the task
generators, with targets from the tasks' checkers.

Skills (every task, the ``freeform_skill`` flow): a new question from five seed examples (a
fresh train-split problem), a 1-3 rating of a question (3 when the task's parser accepts
it, 1 for a corrupted or foreign one), an answer (the gold solution) and a 1-3 rating of a
question/answer pair (3 for the gold answer, 2 for the right final answer in the wrong
shape, 1 for a wrong one). Knowledge (the ``knowledge`` and ``document_augmentation``
flows), on prose passages of the standard library's ``pydoc_data.topics``: question/answer
pairs on the passage's first sentences (the question names a sentence's first words, the
answer is the sentence), the three filter ratings (3 when the answer, question or pair comes
from the passage, 1 when it was swapped in from another), and the three rewrites (the
passage itself, its sentences one per line, its first two sentences). Every label comes from
a checker, so the teacher is honest and, being tiny, imperfect: its card measures how often
it is right.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from burnish.errors import DataError
from burnish.sdg.documents import chunk_text
from burnish.sdg.flow import Block, load_flow
from burnish.sdg.generate import format_seed_group, format_seeds
from burnish.sdg.taxonomy import SeedExample
from burnish.tasks import CHARSET, Task, get_task, list_tasks
from burnish.tasks.arith_chain import nudge

__all__ = [
    "TeacherItem",
    "corrupt_question",
    "knowledge_items",
    "pair_label",
    "passages",
    "question_label",
    "skill_items",
    "teacher_rows",
]

SKILL_FLOW = "freeform_skill"
KNOWLEDGE_FLOW = "knowledge"
AUGMENT_FLOW = "document_augmentation"
SEEDS = 5  # seed examples per skill prompt (the taxonomy's minimum)


@dataclass(frozen=True)
class TeacherItem:
    """One training or evaluation prompt: the flow block it imitates, the filled prompt, the
    target reply, and the task (skills) or ``"knowledge"``."""

    block: str
    prompt: str
    target: str
    task: str
    question: str = ""  # skills: the question the prompt holds (to score the reply)

    def to_row(self) -> dict:
        return {
            "messages": [
                {"role": "user", "content": self.prompt},
                {"role": "assistant", "content": self.target},
            ],
            "task": self.task,
            "block": self.block,
        }


def _blocks(flow: str) -> dict[str, Block]:
    return {b.name: b for b in load_flow(flow).blocks if b.type == "llm"}


def _describe(task: Task, rng: random.Random) -> str:
    """A task description in one of a few phrasings (leaves word theirs freely)."""
    desc = task.description[0].upper() + task.description[1:]
    return rng.choice(
        [
            f"{desc}.",
            f"{desc}, written as '{task.usage}'.",
            f"{desc}, written as '{task.usage}', and reply with the result on a line "
            "'Answer: ...'.",
        ]
    )


# ---- skills -------------------------------------------------------------------------------


def question_label(task: Task, question: str) -> int:
    """3 if the task's parser accepts ``question``, else 1."""
    try:
        task.solve(question)
    except (DataError, ValueError):
        return 1
    return 3


def pair_label(task: Task, question: str, answer: str) -> int:
    """3: the gold solution (line by line, spaces ignored); 2: the right final answer in
    another shape; 1: a wrong or missing final answer."""
    gold = task.solve(question)
    if [x.replace(" ", "") for x in answer.strip().splitlines()] == [
        x.replace(" ", "") for x in gold.answer.splitlines()
    ]:
        return 3
    return 2 if task.score(question, answer) else 1


def corrupt_question(question: str, others: list[str], rng: random.Random) -> str:
    """A damaged question: truncated, a character dropped or inserted, or another task's."""
    kind = rng.randrange(4)
    if kind == 0 and len(question) > 4:
        return question[: rng.randrange(2, len(question) - 1)]
    if kind == 1 and len(question) > 4:
        i = rng.randrange(len(question))
        return question[:i] + question[i + 1 :]
    if kind == 2:
        i = rng.randrange(len(question) + 1)
        return question[:i] + rng.choice("+-*xz ,.?07") + question[i:]
    return rng.choice(others)


def _corrupt_final(final: str, rng: random.Random) -> str:
    """A wrong final answer close to ``final``."""
    if re.fullmatch(r"-?\d+", final):
        return str(nudge(int(final), rng))
    chars = list(final)
    for _ in range(10):
        i, j = rng.randrange(len(chars)), rng.randrange(len(chars))
        chars[i], chars[j] = chars[j], chars[i]
        if "".join(chars) != final:
            return "".join(chars)
    return final + final[-1]


def _pair_answer(task: Task, question: str, rng: random.Random) -> str:
    """The gold answer (45%), the right final in another shape (15%) or a wrong one."""
    gold = task.solve(question)
    u = rng.random()
    if u < 0.45:
        return gold.answer
    if u < 0.6:
        steps = gold.answer.splitlines()[:-1]
        if steps and rng.random() < 0.5:
            return f"Answer: {gold.final}"  # the steps left out
        return f"{question}\nAnswer: {gold.final}"  # the question restated as a step
    lines = gold.answer.splitlines()
    return "\n".join([*lines[:-1], f"Answer: {_corrupt_final(gold.final, rng)}"])


def skill_items(task_name: str, n: int, split: str, seed: int) -> list[TeacherItem]:
    """``n`` items for one task, spread evenly over the four skill blocks."""
    task = get_task(task_name)
    rng = random.Random(f"teacher|{task_name}|{split}|{seed}")
    blocks = _blocks(SKILL_FLOW)
    pool = task.generate(max(4 * n, 200), split=split, seed=seed)
    seeds_pool = task.generate(200, split="train", seed=seed + 1)
    foreign = [
        e.prompt for t in list_tasks() if t != task_name for e in get_task(t).generate(20, seed=9)
    ]
    items = []
    for k in range(n):
        block = ("questions", "question_rating", "answers", "pair_rating")[k % 4]
        seeds = [SeedExample(e.prompt, e.answer) for e in rng.sample(seeds_pool, SEEDS)]
        question = rng.choice(pool).prompt
        row = {"task_description": _describe(task, rng), "seed_examples": format_seeds(seeds)}
        if block == "questions":
            target = question
        elif block == "question_rating":
            if rng.random() < 0.4:
                question = corrupt_question(question, foreign, rng)
            target = str(question_label(task, question))
        elif block == "answers":
            target = task.solve(question).answer
        else:
            row["answer"] = _pair_answer(task, question, rng)
            target = str(pair_label(task, question, row["answer"]))
        row["question"] = question
        prompt = blocks[block].prompt.format_map(row)
        items.append(TeacherItem(block, prompt, target, task_name, question))
    return items


# ---- knowledge ----------------------------------------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _clean(text: str) -> str:
    swaps = {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2014": "-"}
    text = "".join(swaps.get(c, c) for c in text)
    return "".join(c for c in text if c in CHARSET)


def passages(max_tokens: int = 400, count: Callable[[str], int] = len) -> list[str]:
    """Prose chunks of the Python reference (``pydoc_data.topics``): paragraphs of running
    text (no code, no headings), chunked as :func:`burnish.sdg.documents.chunk_text` chunks
    documents."""
    from pydoc_data.topics import topics

    prose = []
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", _clean(topics[key])):
            if para.startswith((" ", "\t")) or len(para) < 120 or ". " not in para:
                continue
            if any(c in para for c in "*=>{}"):
                continue
            prose.append(" ".join(para.split()))
    return chunk_text("\n\n".join(prose), count, max_tokens)


def _sentences(passage: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(passage.replace("\n\n", " ")) if s.strip()]


def _pairs(passage: str, n: int) -> list[tuple[str, str]]:
    """Up to ``n`` questions on the passage's sentences (of 5 words or more), in order, each
    naming the sentence's first words; the answer is the sentence (at most 25 words)."""
    out = []
    for sentence in _sentences(passage):
        words = sentence.split()
        if len(words) >= 5:
            head = " ".join(words[:3])
            out.append((f'What does the passage say about "{head}"?', " ".join(words[:25])))
        if len(out) == n:
            break
    return out


def knowledge_items(chunks: list[str], n: int, seed: int) -> list[TeacherItem]:
    """``n`` items spread over the knowledge flow's four blocks and the three rewrites."""
    rng = random.Random(f"teacher|knowledge|{seed}")
    blocks = {**_blocks(KNOWLEDGE_FLOW), **_blocks(AUGMENT_FLOW)}
    order = ["qa_pairs", "faithfulness", "qa_pairs", "relevancy", "qa_pairs", "question_quality",
             "detailed_summary", "atomic_facts", "extractive_summary"]  # fmt: skip
    items = []
    for k in range(n):
        block = order[k % len(order)]
        chunk, other = rng.sample(chunks, 2)
        pairs, foreign = _pairs(chunk, 3), rng.sample(_pairs(other, 3) or [("", "")], 1)
        if not pairs or not foreign[0][0]:
            continue
        seed_chunk = " ".join(_sentences(rng.choice(chunks))[:1])[:160]
        seeds = [SeedExample(q, a) for q, a in _pairs(seed_chunk, 1)]
        row = {
            "domain": "the Python language reference",
            "document_outline": "Python reference: " + " ".join(chunk.split()[:6]),
            "chunk": chunk,
            "seed_examples": format_seed_group(seed_chunk, seeds),
        }
        question, answer = rng.choice(pairs)
        honest = rng.random() < 0.6
        if block == "qa_pairs":
            target = "\n".join(f"Question: {q}\nAnswer: {a}" for q, a in pairs)
        elif block == "faithfulness":
            answer = answer if honest else foreign[0][1]
            target = "3" if honest else "1"
        elif block == "relevancy":
            others = [a for q, a in pairs if q != question] or [foreign[0][1]]
            answer = answer if honest else others[0]
            target = "3" if honest else "1"
        elif block == "question_quality":
            question = question if honest else foreign[0][0]
            target = "3" if honest else "1"
        elif block == "detailed_summary":
            target = " ".join(chunk.split())
        elif block == "atomic_facts":
            target = "\n".join(_sentences(chunk)[:6])
        else:
            target = " ".join(_sentences(chunk)[:2])
        row |= {"question": question, "answer": answer}
        items.append(TeacherItem(block, blocks[block].prompt.format_map(row), target, "knowledge"))
    return items


def teacher_rows(
    tasks: list[str],
    per_task: int,
    knowledge: int,
    split: str,
    seed: int,
    chunks: list[str] | None = None,
) -> list[TeacherItem]:
    """The skill items of ``tasks`` and the knowledge items, shuffled."""
    items = [x for t in tasks for x in skill_items(t, per_task, split, seed)]
    if knowledge:
        items += knowledge_items(chunks if chunks is not None else passages(), knowledge, seed)
    random.Random(seed).shuffle(items)
    return items
