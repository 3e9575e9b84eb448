"""Prepare a chat JSONL file into a tokenized dataset, with a report and an on-disk cache.

The cache key covers the tokenizer (vocabulary and chat template), the data file's bytes and
every option, so a changed tokenizer or data file is never served stale tokens.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerBase

from burnish.data.tokenize import IGNORE_INDEX, tokenize_conversation
from burnish.errors import DataError
from burnish.io import atomic_write_text, read_jsonl

__all__ = [
    "DataReport",
    "TokenizedDataset",
    "default_cache_dir",
    "prepare_dataset",
    "tokenize_rows",
]


@dataclass
class DataReport:
    """What preparation kept and dropped."""

    samples_in: int = 0
    samples_kept: int = 0
    dropped_too_long: int = 0
    tokens: int = 0
    loss_tokens: int = 0
    max_seq_len: int = 0
    longest_kept: int = 0


@dataclass
class TokenizedDataset:
    """Variable-length samples: ``input_ids[i]`` and ``labels[i]`` are 1-D int64 tensors."""

    input_ids: list[torch.Tensor]
    labels: list[torch.Tensor]
    report: DataReport = field(default_factory=DataReport)
    _lengths: list[int] | None = field(default=None, init=False, repr=False, compare=False)
    _loss_tokens: list[int] | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> list[int]:
        """Tokens per sample (computed once; a prepared dataset is not mutated)."""
        if self._lengths is None:
            self._lengths = [len(x) for x in self.input_ids]
        return self._lengths

    def loss_tokens(self) -> list[int]:
        """Labelled tokens per sample (computed once)."""
        if self._loss_tokens is None:
            self._loss_tokens = [int((y != IGNORE_INDEX).sum()) for y in self.labels]
        return self._loss_tokens

    def save(self, path: str | Path) -> None:
        """Store as one safetensors file: flat ids and labels, sample offsets, report metadata."""
        offsets = torch.tensor([0, *torch.tensor(self.lengths()).cumsum(0).tolist()])
        tensors = {
            "input_ids": torch.cat(self.input_ids) if self.input_ids else torch.zeros(0),
            "labels": torch.cat(self.labels) if self.labels else torch.zeros(0),
            "offsets": offsets,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(tensors, str(tmp), metadata={"report": json.dumps(asdict(self.report))})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> TokenizedDataset:
        from safetensors import safe_open

        t = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            report = DataReport(**json.loads(f.metadata()["report"]))
        off = t["offsets"].tolist()
        ids = [t["input_ids"][a:b].long() for a, b in itertools.pairwise(off)]
        labels = [t["labels"][a:b].long() for a, b in itertools.pairwise(off)]
        return cls(ids, labels, report)


def tokenize_rows(
    rows: list[dict],
    tokenizer: PreTrainedTokenizerBase,
    max_seq_len: int,
    source: str = "data",
) -> TokenizedDataset:
    """Tokenize chat rows ``{"messages": [...], "unmask": bool?}``; drop samples too long.

    A sample is dropped (and counted) when it has ``max_seq_len`` tokens or more.
    """
    report = DataReport(samples_in=len(rows), max_seq_len=max_seq_len)
    ids_out: list[torch.Tensor] = []
    labels_out: list[torch.Tensor] = []
    for i, row in enumerate(rows):
        where = f"{source}:{i + 1}"
        if "messages" not in row:
            raise DataError(f"{where}: missing 'messages' (expected chat rows)")
        ids, labels = tokenize_conversation(
            row["messages"], tokenizer, bool(row.get("unmask")), where
        )
        if len(ids) >= max_seq_len:
            report.dropped_too_long += 1
            continue
        ids_out.append(torch.tensor(ids, dtype=torch.long))
        labels_out.append(torch.tensor(labels, dtype=torch.long))
        report.tokens += len(ids)
        report.loss_tokens += sum(1 for x in labels if x != IGNORE_INDEX)
        report.longest_kept = max(report.longest_kept, len(ids))
    report.samples_kept = len(ids_out)
    if not ids_out:
        raise DataError(
            f"{source}: no sample left after dropping {report.dropped_too_long} of "
            f"{report.samples_in} at or above max_seq_len={max_seq_len}; raise max_seq_len"
        )
    return TokenizedDataset(ids_out, labels_out, report)


def default_cache_dir() -> Path:
    """``$BURNISH_CACHE`` or ``~/.cache/burnish``."""
    return Path(os.environ.get("BURNISH_CACHE", Path.home() / ".cache" / "burnish"))


def _tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    core = (
        backend.to_str()
        if backend is not None
        else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    )
    return hashlib.sha256((core + str(tokenizer.chat_template)).encode()).hexdigest()


def prepare_dataset(
    data: str | Path,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_len: int = 512,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> TokenizedDataset:
    """Load a chat JSONL file, tokenize it, cache the result; return the dataset with its report."""
    data = Path(data)
    rows = read_jsonl(data)  # validates the file and every line first
    if not rows:
        raise DataError(f"{data}: the file has no rows")
    key = hashlib.sha256(
        (_tokenizer_fingerprint(tokenizer) + f"|{max_seq_len}|").encode() + data.read_bytes()
    ).hexdigest()[:24]
    cache = Path(cache_dir or default_cache_dir()) / "data" / f"{key}.safetensors"
    if use_cache and cache.is_file():
        return TokenizedDataset.load(cache)
    ds = tokenize_rows(rows, tokenizer, max_seq_len, source=str(data))
    if use_cache:
        ds.save(cache)
    return ds


def write_report(report: DataReport, path: str | Path) -> None:
    atomic_write_text(path, json.dumps(asdict(report), indent=2) + "\n")
