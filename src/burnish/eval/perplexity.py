"""Perplexity of a causal LM on token blocks (real text: :mod:`burnish.data.corpus`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from burnish.progress import progress_bar

__all__ = ["PerplexityResult", "chat_loss", "model_perplexity", "perplexity"]


@dataclass(frozen=True)
class PerplexityResult:
    """exp(mean next-token NLL) over every predicted token of the blocks."""

    perplexity: float
    nll: float  # mean negative log-likelihood per predicted token (nats)
    tokens: int  # predicted tokens (each block's first token is not predicted)
    blocks: int


@torch.no_grad()
def perplexity(
    model: PreTrainedModel,
    blocks: list[list[int]],
    pad_id: int = 0,
    batch_tokens: int = 2048,
    progress: bool = False,
) -> PerplexityResult:
    """Mean next-token NLL of ``blocks`` under ``model``; batches are length-sorted and right-
    padded to at most ``batch_tokens`` slots (padding carries no loss)."""
    if not blocks:
        raise ValueError("perplexity needs at least one block of tokens")
    device = next(model.parameters()).device
    order = sorted(range(len(blocks)), key=lambda i: -len(blocks[i]))
    total_nll, total = 0.0, 0
    with progress_bar(len(blocks), "perplexity", progress) as advance:
        start = 0
        while start < len(order):
            width = len(blocks[order[start]])
            rows = max(1, batch_tokens // max(1, width))
            batch = [blocks[i] for i in order[start : start + rows]]
            nll, n = _batch_nll(model, batch, pad_id, device)
            total_nll, total = total_nll + nll, total + n
            start += len(batch)
            advance(len(batch), info=f"ppl {math.exp(total_nll / max(1, total)):.3f}")
    mean = total_nll / max(1, total)
    return PerplexityResult(math.exp(mean), mean, total, len(blocks))


def _batch_nll(
    model: PreTrainedModel, batch: list[list[int]], pad_id: int, device: torch.device
) -> tuple[float, int]:
    """(summed NLL, predicted tokens) of a right-padded batch."""
    width = max(len(b) for b in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, b in enumerate(batch):
        ids[r, : len(b)] = torch.tensor(b)
        mask[r, : len(b)] = 1
    ids, mask = ids.to(device), mask.to(device)
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits  # [B, T, V]
    target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)  # [B, T-1]
    nll = F.cross_entropy(
        logits[:, :-1].float().flatten(0, 1), target.flatten(), ignore_index=-100, reduction="sum"
    )
    return float(nll), int((target != -100).sum())


def model_perplexity(
    model: str,
    split: str = "test",
    block_size: int = 512,
    max_blocks: int | None = 64,
    corpus: str = "pydoc",
    device: str = "cpu",
    dtype: str = "float32",
    allow_pickle: bool = False,
    progress: bool = False,
) -> PerplexityResult:
    """Python API behind ``burnish eval --perplexity``: a model (directory, zoo name, .gguf
    or known real model) on a real-text corpus split, cut into ``block_size`` token blocks."""
    from burnish.data.corpus import corpus_blocks
    from burnish.models.io import load_model
    from burnish.models.zoo import resolve_model

    m, tok = load_model(resolve_model(model), dtype=dtype, device=device, allow_pickle=allow_pickle)
    blocks = corpus_blocks(tok, split, block_size, max_blocks, corpus=corpus)
    return perplexity(m, blocks, tok.pad_token_id or 0, progress=progress)


@torch.no_grad()
def chat_loss(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict],
    max_seq_len: int | None = None,
    batch_tokens: int = 4096,
) -> float:
    """Mean NLL per trained token of chat rows ``{"messages", "unmask"?}``, on the tokens SFT
    trains (assistant turns; user turns too with ``unmask``); rows longer than
    ``max_seq_len`` are cut there."""
    from burnish.data.tokenize import IGNORE_INDEX, tokenize_conversation

    device = next(model.parameters()).device
    pairs = []
    for i, r in enumerate(rows):
        ids, labels = tokenize_conversation(
            r["messages"], tokenizer, bool(r.get("unmask")), f"row {i + 1}"
        )
        pairs.append((ids[:max_seq_len], labels[:max_seq_len]))
    pairs.sort(key=lambda p: -len(p[0]))
    total, count, start = 0.0, 0, 0
    while start < len(pairs):
        width = len(pairs[start][0])
        batch = pairs[start : start + max(1, batch_tokens // max(1, width))]
        ids = torch.full((len(batch), width), tokenizer.pad_token_id or 0, dtype=torch.long)
        target = torch.full_like(ids, IGNORE_INDEX)
        for k, (x, y) in enumerate(batch):
            ids[k, : len(x)], target[k, : len(y)] = torch.tensor(x), torch.tensor(y)
        mask = torch.arange(width)[None] < torch.tensor([len(x) for x, _ in batch])[:, None]
        logits = model(input_ids=ids.to(device), attention_mask=mask.long().to(device)).logits
        total += float(
            F.cross_entropy(
                logits[:, :-1].float().flatten(0, 1),
                target[:, 1:].flatten().to(device),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )
        )
        count += int((target[:, 1:] != IGNORE_INDEX).sum())
        start += len(batch)
    return total / max(1, count)
