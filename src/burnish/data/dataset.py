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

from burnish.data.tokenize import IGNORE_INDEX, tokenize_conversation, validate_messages
from burnish.errors import DataError
from burnish.io import atomic_file, atomic_write_text, read_jsonl

__all__ = [
    "DataReport",
    "TokenizedDataset",
    "default_cache_dir",
    "describe_report",
    "prepare_dataset",
    "tokenize_rows",
    "tokenizer_fingerprint",
]

_FORMAT = "burnish-tokenized-v2"  # bump when what a prepared file holds changes


@dataclass
class DataReport:
    """What preparation kept and dropped."""

    samples_in: int = 0
    samples_kept: int = 0
    dropped_too_long: int = 0
    dropped_empty_turn: int = 0  # a user or assistant message with no content
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
    tokenizer_fingerprint: str = ""  # of the tokenizer and chat template that made the ids
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

    def fingerprint(self) -> str:
        """sha256 of every sample's ids and labels: the training content, however the data
        file was named or prepared."""
        h = hashlib.sha256()
        for ids, labels in zip(self.input_ids, self.labels, strict=True):
            h.update(ids.numpy().tobytes())
            h.update(labels.numpy().tobytes())
        return h.hexdigest()

    def save(self, path: str | Path) -> None:
        """Store as one safetensors file: flat ids and labels, sample offsets, and metadata
        (the report and the tokenizer fingerprint, checked when the file is trained on)."""
        offsets = torch.tensor([0, *torch.tensor(self.lengths()).cumsum(0).tolist()])
        tensors = {
            "input_ids": torch.cat(self.input_ids) if self.input_ids else torch.zeros(0),
            "labels": torch.cat(self.labels) if self.labels else torch.zeros(0),
            "offsets": offsets,
        }
        meta = {
            "format": _FORMAT,
            "report": json.dumps(asdict(self.report)),
            "tokenizer": self.tokenizer_fingerprint,
        }
        with atomic_file(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> TokenizedDataset:
        """Read a file written by :meth:`save`; DataError if it is not one."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such prepared data file")
        try:
            t = load_file(str(path))
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            report = DataReport(**json.loads(meta["report"]))
        except (SafetensorError, KeyError, TypeError, ValueError):
            raise DataError(
                f"{path}: not a dataset written by `burnish data prepare` (or truncated); "
                "prepare it again from the chat JSONL"
            ) from None
        off = t["offsets"].tolist()
        ids = [t["input_ids"][a:b].long() for a, b in itertools.pairwise(off)]
        labels = [t["labels"][a:b].long() for a, b in itertools.pairwise(off)]
        return cls(ids, labels, report, meta.get("tokenizer", ""))


def tokenize_rows(
    rows: list[dict],
    tokenizer: PreTrainedTokenizerBase,
    max_seq_len: int,
    source: str = "data",
) -> TokenizedDataset:
    """Tokenize chat rows ``{"messages": [...], "unmask": bool?}``; drop samples too long.

    A sample is dropped (and counted) when it has ``max_seq_len`` tokens or more, or when a
    user or assistant message has no content (it would train the model to answer nothing).
    """
    report = DataReport(samples_in=len(rows), max_seq_len=max_seq_len)
    ids_out: list[torch.Tensor] = []
    labels_out: list[torch.Tensor] = []
    for i, row in enumerate(rows):
        where = f"{source}:{i + 1}"
        if "messages" not in row:
            raise DataError(f"{where}: missing 'messages' (expected chat rows)")
        if _has_empty_turn(validate_messages(row["messages"], where)):
            report.dropped_empty_turn += 1
            continue
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
    _check_some_left(report, source)
    return TokenizedDataset(ids_out, labels_out, report, tokenizer_fingerprint(tokenizer))


def _has_empty_turn(messages: list[dict[str, str]]) -> bool:
    return any(m["role"] != "system" and not m["content"].strip() for m in messages)


def _check_some_left(report: DataReport, source: str) -> None:
    if report.samples_kept:
        return
    raise DataError(
        f"{source}: no sample left of {report.samples_in}: {report.dropped_too_long} at or "
        f"above max_seq_len={report.max_seq_len} (raise max_seq_len), "
        f"{report.dropped_empty_turn} with an empty user or assistant turn"
    )


def describe_report(report: DataReport) -> str:
    """One line: what was kept and why the rest was dropped."""
    return (
        f"kept {report.samples_kept} of {report.samples_in} samples ({report.tokens} tokens, "
        f"{report.loss_tokens} trained); dropped {report.dropped_too_long} at or above "
        f"max_seq_len={report.max_seq_len} and {report.dropped_empty_turn} with an empty turn"
    )


def default_cache_dir() -> Path:
    """``$BURNISH_CACHE`` or ``~/.cache/burnish``."""
    return Path(os.environ.get("BURNISH_CACHE", Path.home() / ".cache" / "burnish"))


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """sha256 of the tokenizer's vocabulary/model and chat template (what fixes the ids)."""
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
    """Load training data, tokenized, with its report.

    ``data`` is a chat JSONL file (tokenized here and cached) or a ``.safetensors`` file
    written by ``burnish data prepare`` with the same tokenizer and chat template (samples at
    or above ``max_seq_len`` are dropped and counted, as for JSONL).
    """
    data = Path(data)
    if data.suffix == ".safetensors":
        return _prepared(data, tokenizer, max_seq_len)
    rows = read_jsonl(data)  # validates the file and every line first
    if not rows:
        raise DataError(f"{data}: the file has no rows")
    key = hashlib.sha256(
        (tokenizer_fingerprint(tokenizer) + f"|{max_seq_len}|{_FORMAT}|").encode()
        + data.read_bytes()
    ).hexdigest()[:24]
    cache = Path(cache_dir or default_cache_dir()) / "data" / f"{key}.safetensors"
    if use_cache and cache.is_file():
        return TokenizedDataset.load(cache)
    ds = tokenize_rows(rows, tokenizer, max_seq_len, source=str(data))
    if use_cache:
        ds.save(cache)
    return ds


def _prepared(path: Path, tokenizer: PreTrainedTokenizerBase, max_seq_len: int) -> TokenizedDataset:
    """A dataset file from ``burnish data prepare``, checked against ``tokenizer``."""
    ds = TokenizedDataset.load(path)
    if ds.tokenizer_fingerprint != tokenizer_fingerprint(tokenizer):
        raise DataError(
            f"{path}: prepared with another tokenizer or chat template than this model's; "
            "prepare it again with `burnish data prepare --model MODEL`, or train on the JSONL"
        )
    keep = [i for i, n in enumerate(ds.lengths()) if n < max_seq_len]
    if len(keep) == len(ds):
        return ds
    r = ds.report
    kept_ids = [ds.input_ids[i] for i in keep]
    kept_labels = [ds.labels[i] for i in keep]
    report = DataReport(
        samples_in=r.samples_in,
        samples_kept=len(keep),
        dropped_too_long=r.dropped_too_long + len(ds) - len(keep),
        dropped_empty_turn=r.dropped_empty_turn,
        tokens=sum(len(x) for x in kept_ids),
        loss_tokens=sum(int((y != IGNORE_INDEX).sum()) for y in kept_labels),
        max_seq_len=max_seq_len,
        longest_kept=max((len(x) for x in kept_ids), default=0),
    )
    _check_some_left(report, str(path))
    return TokenizedDataset(kept_ids, kept_labels, report, ds.tokenizer_fingerprint)


def write_report(report: DataReport, path: str | Path) -> None:
    atomic_write_text(path, json.dumps(asdict(report), indent=2) + "\n")
