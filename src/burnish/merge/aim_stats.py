"""AIM statistics: the base model's mean |input activation| per input channel, cached.

Forward hooks on every ``nn.Linear`` (lm_head included) and every norm-like leaf module (a
1-D ``weight`` as wide as its input) add up |x| over the real (non-padding) tokens of a
calibration set. The result maps weight names (``model.layers.0.mlp.up_proj.weight``) to
vectors a [in_features] and is saved as safetensors with the base model's content hash and
the calibration data's hash in the metadata, so a cached file is reused only when both match.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from burnish.data.corpus import CORPORA, corpus_texts, cut_blocks, special_prefix
from burnish.errors import DataError, ModelLoadError
from burnish.io import atomic_file, read_jsonl
from burnish.merge.lazy import LazyCheckpoint
from burnish.models.io import chat_text

__all__ = [
    "calibration_blocks",
    "collect_activation_stats",
    "compute_or_load_stats",
    "data_hash",
    "load_stats",
    "model_hash",
    "save_stats",
]

DEFAULT_DATA = "zoo"  # the mixed prompts of every registered task, rendered as chats
_ZOO_PER_TASK = 64


# ---------------------------------------------------------------- calibration data


def _chat(tok: PreTrainedTokenizerBase, messages: list[dict]) -> str:
    return chat_text(tok, messages)


def _texts(data: str | None, tok: PreTrainedTokenizerBase) -> list[str]:
    """Texts of a calibration source: 'zoo'/None (task chats), 'pydoc' (real text: the
    corpus's train split), a JSONL file, or a plain text file."""
    if data in CORPORA:
        return corpus_texts("train", data)
    if data is None or data == DEFAULT_DATA:
        from burnish.tasks import list_tasks, mixture

        return [
            _chat(tok, e.to_messages()["messages"])
            for e in mixture(list_tasks(), _ZOO_PER_TASK, "train", 0)
        ]
    path = Path(data)
    if not path.is_file():
        raise DataError(f"{path}: no such calibration file (text file or JSONL)")
    if path.suffix != ".jsonl":
        return [path.read_text(encoding="utf-8")]
    return [_row_text(row, path, i, tok) for i, row in enumerate(read_jsonl(path), 1)]


def _row_text(row: dict, path: Path, lineno: int, tok: PreTrainedTokenizerBase) -> str:
    if isinstance(row.get("text"), str):
        return row["text"]
    if isinstance(row.get("messages"), list):
        return _chat(tok, row["messages"])
    if isinstance(row.get("prompt"), str):
        return _chat(tok, [{"role": "user", "content": row["prompt"]}])
    raise DataError(f"{path}: row {lineno}: expected a 'text', 'messages' or 'prompt' field")


def calibration_blocks(
    data: str | None, tok: PreTrainedTokenizerBase, block_size: int = 512, max_texts: int = 256
) -> list[list[int]]:
    """Token-id blocks of at most ``block_size`` (long texts are cut into several, each block
    led by the tokenizer's BOS-like prefix, as the model saw text in training), at most
    ``max_texts`` of them."""
    texts = (
        tok(t, add_special_tokens=False, verbose=False)["input_ids"] for t in _texts(data, tok)
    )
    blocks = cut_blocks(texts, block_size, special_prefix(tok), max_texts, min_tokens=1)
    if not blocks:
        raise DataError(f"{data}: calibration data holds no tokens")
    return blocks


# ---------------------------------------------------------------- collection


def _norm_like(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return (
        isinstance(weight, nn.Parameter)
        and weight.dim() == 1
        and not list(module.children())
        and not isinstance(module, nn.Embedding | nn.Linear)
    )


class _Recorder:
    """Sums |input| per channel over the real tokens of each forward pass."""

    def __init__(self) -> None:
        self.mask: Tensor | None = None  # [B, T] of the current batch, 1 = real token
        self.sums: dict[str, Tensor] = {}

    def hook(self, name: str):
        def record(_module: nn.Module, args: tuple, _output: object) -> None:
            x = args[0].detach()  # [B, T, C]
            if x.dim() != 3 or self.mask is None:
                return
            width = getattr(_module, "in_features", None) or _module.weight.numel()
            if x.shape[-1] != width:
                return
            s = (x.abs().float() * self.mask[..., None]).sum(dim=(0, 1))  # [C]
            self.sums[name] = self.sums[name] + s if name in self.sums else s

        return record


@contextmanager
def _hooks(model: nn.Module, recorder: _Recorder) -> Iterator[None]:
    handles = [
        m.register_forward_hook(recorder.hook(f"{name}.weight"))
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) or _norm_like(m)
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def collect_activation_stats(
    model: PreTrainedModel, blocks: list[list[int]], pad_id: int, batch_size: int = 8
) -> dict[str, Tensor]:
    """Mean |input activation| per input channel of every Linear and norm of ``model``.

    Args:
        model: the base model (eval mode).
        blocks: token-id lists (calibration blocks).
        pad_id: padding token id (padding positions are masked out).
    Returns:
        weight name -> a [in_features], float32 (sum of |x| over tokens / number of tokens).
    """
    recorder = _Recorder()
    device = next(model.parameters()).device
    order = sorted(range(len(blocks)), key=lambda i: len(blocks[i]))  # little padding
    tokens = 0
    with _hooks(model, recorder):
        for start in range(0, len(order), batch_size):
            batch = [blocks[i] for i in order[start : start + batch_size]]
            width = max(len(b) for b in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros(len(batch), width)
            for row, b in enumerate(batch):
                ids[row, : len(b)] = torch.tensor(b)
                mask[row, : len(b)] = 1
            recorder.mask = mask.to(device)
            model(input_ids=ids.to(device), attention_mask=mask.long().to(device), use_cache=False)
            tokens += int(mask.sum())
    return {name: (s / tokens).cpu() for name, s in recorder.sums.items()}


# ---------------------------------------------------------------- hashing and cache


def model_hash(model_dir: str | Path) -> str:
    """sha256 of a model's safetensors weight files (content, in name order)."""
    ckpt = LazyCheckpoint(model_dir)
    h = hashlib.sha256()
    for file in sorted(set(ckpt.files.values())):
        h.update(file.name.encode())
        with file.open("rb") as f:
            while chunk := f.read(1 << 24):
                h.update(chunk)
    return h.hexdigest()


def data_hash(blocks: list[list[int]]) -> str:
    """sha256 of the calibration blocks' token ids."""
    return hashlib.sha256(json.dumps(blocks, separators=(",", ":")).encode()).hexdigest()


def save_stats(path: str | Path, stats: dict[str, Tensor], meta: dict[str, str]) -> Path:
    """Write statistics atomically (temporary name, then rename)."""
    path = Path(path)
    with atomic_file(path) as tmp:
        save_file({k: v.contiguous() for k, v in stats.items()}, str(tmp), metadata=meta)
    return path


def load_stats(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(weight name -> a [C], metadata) of a statistics file."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such AIM statistics file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118
    except SafetensorError as e:
        raise ModelLoadError(f"{path}: not a valid AIM statistics file ({e})") from None


def _cache_dir() -> Path:
    return Path(os.environ.get("BURNISH_CACHE", Path.home() / ".cache" / "burnish")) / "aim"


def compute_or_load_stats(
    base_dir: str | Path,
    data: str | None = None,
    stats_path: str | Path | None = None,
    block_size: int = 512,
    max_texts: int = 256,
    batch_size: int = 8,
    overwrite: bool = False,
    chat_template: str | Path | None = None,
) -> tuple[dict[str, Tensor], Path]:
    """AIM statistics of the base model on ``data``; computed once, then read from a file.

    With ``stats_path`` given and present, the file is used if it was computed for this base
    model (and for ``data``, when ``data`` is given); a mismatch is an error, never silently
    overwritten. A missing ``stats_path`` is computed and written; ``overwrite`` recomputes
    and replaces an existing one. Without ``stats_path`` the cache is
    $BURNISH_CACHE/aim/<model hash>-<data hash>.safetensors. ``chat_template``: a Jinja file
    for a base model without one (calibration chats are rendered with it).
    Returns (weight name -> a [C], the file holding them).
    """
    base_dir = Path(base_dir)
    m_hash = model_hash(base_dir)
    reuse = not overwrite
    if reuse and stats_path is not None and Path(stats_path).is_file() and data is None:
        return _checked(Path(stats_path), m_hash, None), Path(stats_path)
    tok = _tokenizer(base_dir, chat_template)
    blocks = calibration_blocks(data, tok, block_size, max_texts)
    d_hash = data_hash(blocks)
    path = Path(stats_path or _cache_dir() / f"{m_hash[:16]}-{d_hash[:16]}.safetensors")
    if reuse and path.is_file():
        return _checked(path, m_hash, d_hash), path
    return _compute(base_dir, tok, blocks, batch_size, path, m_hash, d_hash, data), path


def _checked(path: Path, m_hash: str, d_hash: str | None) -> dict[str, Tensor]:
    stats, meta = load_stats(path)
    if meta.get("model_hash") != m_hash:
        raise ModelLoadError(
            f"{path}: AIM statistics of another model (content hash differs from the base "
            "model's); delete the file or choose another stats path"
        )
    if d_hash is not None and meta.get("data_hash") != d_hash:
        raise DataError(
            f"{path}: AIM statistics of other calibration data; delete the file or choose "
            "another stats path"
        )
    return stats


def _compute(
    base_dir: Path,
    tok: PreTrainedTokenizerBase,
    blocks: list[list[int]],
    batch_size: int,
    path: Path,
    m_hash: str,
    d_hash: str,
    data: str | None,
) -> dict[str, Tensor]:
    from burnish.models.io import load_model

    model, _ = load_model(base_dir)
    stats = collect_activation_stats(model, blocks, tok.pad_token_id or 0, batch_size)
    meta = {
        "model_hash": m_hash,
        "data_hash": d_hash,
        "blocks": str(len(blocks)),
        "data": str(data or DEFAULT_DATA),
    }
    save_stats(path, stats, meta)
    return stats


def _tokenizer(model_dir: Path, chat_template: str | Path | None) -> PreTrainedTokenizerBase:
    from burnish.models.io import load_tokenizer

    return load_tokenizer(model_dir, chat_template=chat_template)
