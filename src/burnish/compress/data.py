"""Calibration data for Hopscotch: the model's own greedy answers (self-distillation).

Prompts come from the zoo tasks' train split, or, for real models, from instruction prompts
about the standard library's pydoc topics, optionally with raw pydoc text blocks; the full
model answers each prompt greedily, and the loss is next-token cross-entropy on its answers
(hard labels). Sequences are packed padding-free into fixed batches, so every candidate of a
search sees the same tokens.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from burnish.data.corpus import corpus_blocks, corpus_texts
from burnish.data.packing import PackedBatch, collate_packed, pack_rows
from burnish.data.tokenize import tokenize_conversation
from burnish.errors import ConfigError, DataError
from burnish.eval.generate import generate_chat
from burnish.progress import progress_bar
from burnish.tasks import get_task

__all__ = ["DATA_SOURCES", "Calibration", "build_calibration", "pack_calibration", "pydoc_prompts"]

DATA_SOURCES = ("tasks", "pydoc")
_PYDOC_ASKS = (
    "Explain the Python topic '{}' in two or three sentences.",
    "What does '{}' mean in Python? Answer briefly.",
    "Give a short example of '{}' in Python and say what it does.",
)


@dataclass
class Calibration:
    """Packed batches and, per batch, which slots are real tokens ([R, L] bool)."""

    batches: list[PackedBatch]
    real: list[torch.Tensor]
    sequences: int
    tokens: int

    def __post_init__(self) -> None:
        if not self.batches:
            raise DataError("the calibration set is empty; give more samples")


def pydoc_prompts(n: int, seed: int = 0, split: str = "train") -> list[str]:
    """``n`` instruction prompts about pydoc topics (the topic is a text's first line)."""
    topics = [t.strip().splitlines()[0][:60] for t in corpus_texts(split) if t.strip()]
    rng = random.Random(seed)
    return [rng.choice(_PYDOC_ASKS).format(rng.choice(topics)) for _ in range(n)]


def _prompts(source: str, tasks: list[str], n: int, seed: int) -> list[tuple[str, int]]:
    """``(prompt, max_new_tokens)`` pairs for ``source``."""
    if source == "tasks":
        if not tasks:
            raise ConfigError("calibration on tasks needs at least one task name (--tasks)")
        out = []
        for i, name in enumerate(tasks):
            task = get_task(name)
            share = n // len(tasks) + (i < n % len(tasks))
            out += [(p.prompt, task.max_new_tokens) for p in task.generate(share, "train", seed)]
        return out
    if source == "pydoc":
        return [(p, 96) for p in pydoc_prompts(n, seed)]
    raise ConfigError(f"unknown calibration data {source!r}; choose one of {DATA_SOURCES}")


def build_calibration(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    source: str = "tasks",
    tasks: list[str] | None = None,
    samples: int = 256,
    corpus_blocks_n: int = 0,
    block_size: int = 256,
    row_tokens: int = 2048,
    batch_rows: int = 2,
    seed: int = 0,
    generate_batch: int = 32,
    progress: bool = False,
) -> Calibration:
    """Self-distillation data: ``samples`` prompts answered greedily by ``model`` (as it is
    now: call before skipping anything), plus ``corpus_blocks_n`` raw pydoc blocks (all
    tokens trained), packed into batches of ``batch_rows`` rows of ``row_tokens``."""
    prompts = _prompts(source, list(tasks or []), samples, seed)
    seqs: list[tuple[list[int], list[int]]] = []
    with progress_bar(len(prompts), "distill", progress) as advance:
        for i in range(0, len(prompts), generate_batch):
            chunk = prompts[i : i + generate_batch]
            limit = max(m for _, m in chunk)
            answers = generate_chat(model, tokenizer, [p for p, _ in chunk], limit)
            for (prompt, _), (answer,) in zip(chunk, answers, strict=True):
                if answer.strip():
                    msgs = [
                        {"role": "user", "content": prompt},
                        {"role": "assistant", "content": answer.strip()},
                    ]
                    seqs.append(tokenize_conversation(msgs, tokenizer, where="calibration"))
            advance(len(chunk))
    if corpus_blocks_n:
        seqs += [
            (b, list(b)) for b in corpus_blocks(tokenizer, "train", block_size, corpus_blocks_n)
        ]
    return pack_calibration(seqs, row_tokens, batch_rows, tokenizer.pad_token_id or 0)


def pack_calibration(
    seqs: list[tuple[list[int], list[int]]], row_tokens: int, batch_rows: int, pad_id: int
) -> Calibration:
    """Pack ``(input_ids, labels)`` sequences (cut to ``row_tokens``) into fixed batches."""
    seqs = [(ids[:row_tokens], labels[:row_tokens]) for ids, labels in seqs if len(ids) > 1]
    ids = [torch.tensor(s[0]) for s in seqs]
    labels = [torch.tensor(s[1]) for s in seqs]
    rows = pack_rows([len(x) for x in ids], row_tokens)
    batches, real = [], []
    for i in range(0, len(rows), batch_rows):
        chunk = rows[i : i + batch_rows]
        batches.append(collate_packed(chunk, ids, labels, pad_id))
        width = batches[-1].input_ids.shape[1]
        used = torch.tensor([sum(len(ids[j]) for j in row) for row in chunk])
        real.append(torch.arange(width)[None, :] < used[:, None])  # [R, L]
    return Calibration(batches, real, len(seqs), sum(len(x) for x in ids))
