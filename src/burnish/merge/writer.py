"""Streaming writer of sharded safetensors checkpoints, one tensor at a time.

The merge knows every output tensor's name, shape and dtype before computing any of them, so
shards are planned up front: each shard's safetensors header is written when its file is
opened and each tensor's bytes are appended as soon as it is computed. Nothing but the
tensor being written is held in memory. More than one shard gets an HF index
(``model.safetensors.index.json``); a single shard is ``model.safetensors``.
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch

from burnish.errors import ConfigError
from burnish.merge.lazy import INDEX_NAME, ST_DTYPES

__all__ = ["ShardedWriter", "TensorSpec", "parse_size", "plan_shards"]

_ST_NAMES = {v: k for k, v in ST_DTYPES.items()}
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


@dataclass(frozen=True)
class TensorSpec:
    """One output tensor: name, shape and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        n = self.dtype.itemsize
        for s in self.shape:
            n *= s
        return n


def parse_size(size: int | str) -> int:
    """``"5GB"``, ``"500MB"``, ``"2GiB"`` or a byte count -> bytes."""
    if isinstance(size, int):
        value = size
    else:
        text = size.strip().upper().replace(" ", "")
        num = text.rstrip("KMGIB")
        unit = text[len(num) :] or "B"
        try:
            value = int(float(num) * _UNITS[unit])
        except (ValueError, KeyError):
            raise ConfigError(
                f"max_shard_size {size!r}: expected e.g. 5GB, 500MB or bytes"
            ) from None
    if value <= 0:
        raise ConfigError(f"max_shard_size {size!r}: must be positive")
    return value


def plan_shards(specs: list[TensorSpec], max_shard_bytes: int) -> list[list[TensorSpec]]:
    """Split ``specs`` in order into shards of at most ``max_shard_bytes`` (a bigger tensor
    gets a shard of its own)."""
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for spec in specs:
        if shards[-1] and size + spec.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    return shards


def _shard_name(i: int, n: int) -> str:
    return "model.safetensors" if n == 1 else f"model-{i + 1:05d}-of-{n:05d}.safetensors"


def _header_bytes(shard: list[TensorSpec]) -> bytes:
    """The 8-byte length plus the JSON header (space-padded to 8 bytes) of one shard."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for spec in shard:
        header[spec.name] = {
            "dtype": _ST_NAMES[spec.dtype],
            "shape": list(spec.shape),
            "data_offsets": [offset, offset + spec.nbytes],
        }
        offset += spec.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


class ShardedWriter:
    """Write the planned tensors, in plan order, into ``directory``.

    Call :meth:`write` once per planned tensor (same order, shape and dtype), then
    :meth:`finish`. Use inside :func:`burnish.io.atomic_dir` so an interrupted write leaves
    nothing behind.
    """

    def __init__(self, directory: Path, specs: list[TensorSpec], max_shard_bytes: int) -> None:
        if sys.byteorder != "little":  # safetensors is little-endian
            raise RuntimeError("the streaming writer needs a little-endian machine")
        self.directory = Path(directory)
        self.shards = plan_shards(specs, max_shard_bytes)
        self._order = [(i, s) for i, shard in enumerate(self.shards) for s in shard]
        self._next = 0
        self._file: BinaryIO | None = None

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Append the next planned tensor (checked against the plan)."""
        shard_idx, spec = self._order[self._next]
        got = (name, tuple(tensor.shape), tensor.dtype)
        if got != (spec.name, spec.shape, spec.dtype):
            raise RuntimeError(f"writer expected {spec}, got {got}")
        if self._file is None:
            self._file = (self.directory / _shard_name(shard_idx, len(self.shards))).open("wb")
            self._file.write(_header_bytes(self.shards[shard_idx]))
        data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        self._file.write(memoryview(data.numpy()))
        self._next += 1
        if self._next == len(self._order) or self._order[self._next][0] != shard_idx:
            self._file.close()
            self._file = None

    def finish(self) -> dict[str, str]:
        """Check every tensor was written; write the index if sharded. Returns the weight map."""
        if self._next != len(self._order):
            raise RuntimeError(f"writer: {len(self._order) - self._next} tensors not written")
        n = len(self.shards)
        weight_map = {s.name: _shard_name(i, n) for i, sh in enumerate(self.shards) for s in sh}
        if n > 1:
            total = sum(s.nbytes for sh in self.shards for s in sh)
            index = {"metadata": {"total_size": total}, "weight_map": weight_map}
            (self.directory / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
        return weight_map

    def close(self) -> None:
        """Close an open shard file (after an error)."""
        if self._file is not None:
            self._file.close()
            self._file = None
