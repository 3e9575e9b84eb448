"""Labelled solutions for PRM training: policy samples and contrastive copies of gold ones.

A row is ``(prompt, steps, labels)``: the non-empty lines of a solution, each labelled by the
task's exact step checker (good iff it and every step before it are right;
:meth:`burnish.tasks.Task.step_labels`).
"""

from __future__ import annotations

import random

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from burnish.eval.generate import generate_chat
from burnish.scaling.reward import prm_input_ids
from burnish.tasks import Task
from burnish.tasks.arith_chain import corrupt_solution
from burnish.zoo_build.specs import PRMSpec

__all__ = ["Row", "contrastive_rows", "encode_two_class", "sampled_rows"]

Row = tuple[str, list[str], list[bool]]  # (prompt, steps, labels)


def contrastive_rows(task: Task, prompts: list[str], corruptions: int, seed: int) -> list[Row]:
    """Gold solutions and ``corruptions`` corrupted copies of each, labelled by the checker."""
    rng = random.Random(seed)
    rows = []
    for p in prompts:
        gold = task.solve(p).answer
        for c in [gold, *(corrupt_solution(gold, rng) for _ in range(corruptions))]:
            rows.append((p, *task.step_labels(p, c)))
    return rows


def sampled_rows(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    task: Task,
    prompts: list[str],
    samples: int,
    temperature: float,
    seed: int,
) -> list[Row]:
    """``samples`` policy solutions per prompt (batches of 64), labelled; empty ones dropped."""
    rows = []
    for i in range(0, len(prompts), 64):
        chunk = prompts[i : i + 64]
        outs = generate_chat(
            model, tok, chunk, task.max_new_tokens, samples, temperature, seed=seed + i
        )
        for p, comps in zip(chunk, outs, strict=True):
            rows += [(p, *task.step_labels(p, c)) for c in comps]
    return [r for r in rows if r[1]]


def _char_labels(gold_lines: list[str], steps: list[str], labels: list[bool]) -> list[list[bool]]:
    """Per-character labels of each step: good iff all steps before are good and the line so
    far is a prefix of the gold line (dense supervision that teaches "a mismatch happened")."""
    out, before = [], True
    for i, (step, lab) in enumerate(zip(steps, labels, strict=True)):
        ref = gold_lines[i] if i < len(gold_lines) else ""
        out.append([before and ref.startswith(step[: j + 1]) for j in range(len(step))])
        before = lab
    return out


def encode_two_class(
    tok: PreTrainedTokenizerBase, rows: list[Row], spec: PRMSpec, task: Task | None = None
) -> list[tuple]:
    """(ids, separator positions, step labels, character positions, character labels) per row;
    the character labels only with ``spec.dense`` and a one-token-per-character tokenizer."""
    data = []
    for p, steps, lab in rows:
        ids, pos = prm_input_ids(tok, p, steps, spec.separator)
        dpos: list[int] = []
        dlab: list[bool] = []
        if spec.dense > 0 and task is not None:
            gold = task.solve(p).answer.splitlines()
            for sep, step, chars in zip(pos, steps, _char_labels(gold, steps, lab), strict=True):
                n = len(tok(step, add_special_tokens=False)["input_ids"])
                if n == len(step):  # one token per character (the char tokenizer)
                    dpos += range(sep - n, sep)
                    dlab += chars
        data.append((ids, pos, lab, dpos, dlab))
    return data
