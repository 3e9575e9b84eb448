"""Preference rows (TRL / RewardBench style) -> conversations -> tokenized pairs.

A row has ``prompt`` (a string, or the messages before the response), ``chosen`` and
``rejected`` (strings, or message lists: TRL's conversational rows give only the assistant
response; a list that starts before the response is a whole conversation) and optionally
``subset``. Each side is tokenized with the model's chat template, labels on its final
response only (:func:`burnish.data.tokenize.tokenize_response`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from burnish.data.tokenize import tokenize_response
from burnish.errors import DataError
from burnish.io import read_jsonl

__all__ = ["PreferencePairs", "load_pairs", "tokenize_pairs"]

Conversation = list[dict[str, str]]


def _messages(value: Any, role: str, where: str, name: str) -> Conversation:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        return [{"role": m.get("role"), "content": m.get("content")} for m in value]
    raise DataError(f"{where}: `{name}` must be a string or a non-empty list of messages")


def load_pairs(path: str | Path) -> list[tuple[Conversation, Conversation, str]]:
    """``(chosen conversation, rejected conversation, subset)`` per row; one DataError per bad
    row, naming the file, row and field."""
    out = []
    for i, row in enumerate(read_jsonl(path), start=1):
        where = f"{path}: row {i}"
        for name in ("prompt", "chosen", "rejected"):
            if name not in row:
                raise DataError(f"{where}: missing `{name}` (rows need prompt, chosen, rejected)")
        prompt = _messages(row["prompt"], "user", where, "prompt")
        pair = []
        for name in ("chosen", "rejected"):
            resp = _messages(row[name], "assistant", where, name)
            if resp[-1]["role"] != "assistant":
                raise DataError(f"{where}: `{name}` must end with the assistant's response")
            pair.append(resp if resp[0]["role"] != "assistant" else prompt + resp)
        out.append((pair[0], pair[1], str(row.get("subset", "all"))))
    if not out:
        raise DataError(f"{path}: no preference rows")
    return out


@dataclass
class PreferencePairs:
    """Tokenized pairs: per pair, chosen and rejected ``input_ids`` / ``labels`` [T]."""

    chosen_ids: list[torch.Tensor]
    chosen_labels: list[torch.Tensor]
    rejected_ids: list[torch.Tensor]
    rejected_labels: list[torch.Tensor]
    dropped: int = 0  # pairs over the length limit
    _fp: str | None = field(default=None, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.chosen_ids)

    def pair_lengths(self) -> list[int]:
        return [len(c) + len(r) for c, r in zip(self.chosen_ids, self.rejected_ids, strict=True)]

    def fingerprint(self) -> str:
        """sha256 of every pair's ids and labels (the training content)."""
        if self._fp is None:
            h = hashlib.sha256()
            for parts in zip(self.chosen_ids, self.chosen_labels, self.rejected_ids,
                             self.rejected_labels, strict=True):  # fmt: skip
                for t in parts:
                    h.update(t.numpy().tobytes())
            self._fp = h.hexdigest()
        return self._fp


def tokenize_pairs(
    pairs: list[tuple[Conversation, Conversation, str]],
    tokenizer: PreTrainedTokenizerBase,
    max_pair_tokens: int,
    where: str = "preference data",
) -> PreferencePairs:
    """Tokenize every pair; pairs whose two sides hold more than ``max_pair_tokens`` together
    are dropped (counted); DataError when none is left."""
    out = PreferencePairs([], [], [], [])
    for i, (chosen, rejected, _) in enumerate(pairs, start=1):
        c = tokenize_response(chosen, tokenizer, where=f"{where}: row {i} chosen")
        r = tokenize_response(rejected, tokenizer, where=f"{where}: row {i} rejected")
        if len(c[0]) + len(r[0]) > max_pair_tokens:
            out.dropped += 1
            continue
        out.chosen_ids.append(torch.tensor(c[0]))
        out.chosen_labels.append(torch.tensor(c[1]))
        out.rejected_ids.append(torch.tensor(r[0]))
        out.rejected_labels.append(torch.tensor(r[1]))
    if not len(out):
        raise DataError(
            f"{where}: every pair is longer than {max_pair_tokens} tokens (chosen + rejected); "
            "raise max_seq_len (a pair's row holds 2 x max_seq_len tokens at most) or "
            "max_tokens_per_step"
        )
    return out
