"""Lazy reading of HF safetensors checkpoints: one tensor at a time, never a whole model.

A :class:`LazyCheckpoint` knows every tensor's file, shape and dtype from the headers (and
``model.safetensors.index.json`` for sharded models) without reading any weights. Each
:meth:`LazyCheckpoint.read` opens the file, copies one tensor out and closes (unmaps) it
again, so the pages it touched do not stay mapped and counted in the process's memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from burnish.errors import ModelLoadError
from burnish.models.io import check_model_dir

__all__ = ["INDEX_NAME", "ST_DTYPES", "LazyCheckpoint"]

INDEX_NAME = "model.safetensors.index.json"

# safetensors header dtype names <-> torch dtypes
ST_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class LazyCheckpoint:
    """The weights of one HF model directory, read lazily.

    Args:
        path: a model directory with config.json and safetensors weights (one file, or shards
            listed in model.safetensors.index.json).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = check_model_dir(path, pickle_readable=False)
        self.config: dict = json.loads((self.path / "config.json").read_text())
        self.files = _weight_map(self.path)
        self._info: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
        for file in dict.fromkeys(self.files.values()):
            self._info.update(_header(file))
        missing = [n for n in self.files if n not in self._info]
        if missing:
            raise ModelLoadError(
                f"{self.path}: tensor {missing[0]!r} is listed in {INDEX_NAME} but not in "
                f"{self.files[missing[0]].name}"
            )

    def names(self) -> list[str]:
        """Tensor names in checkpoint order."""
        return list(self.files)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._info[name][1]

    def dtype(self, name: str) -> torch.dtype:
        return self._info[name][0]

    def nbytes(self, name: str) -> int:
        dtype, shape = self._info[name]
        return _numel(shape) * dtype.itemsize

    @property
    def total_bytes(self) -> int:
        """Bytes of all tensors (the size of the weights on disk, less headers)."""
        return sum(self.nbytes(n) for n in self.files)

    def read(self, name: str) -> torch.Tensor:
        """A CPU tensor holding ``name``, backed by a private (copy-on-write) mapping of its
        bytes that lives as long as the tensor does; the file handle is closed again."""
        if name not in self.files:
            raise ModelLoadError(f"{self.path}: no tensor {name!r}")
        file = self.files[name]
        try:
            with safe_open(str(file), framework="pt", device="cpu") as f:
                return f.get_tensor(name)
        except SafetensorError as e:
            raise ModelLoadError(f"{file}: cannot read tensor {name!r} ({e})") from None


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _weight_map(path: Path) -> dict[str, Path]:
    """Tensor name -> safetensors file, from the index if there is one."""
    index = path / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ModelLoadError(f"{index}: not a valid safetensors index ({e})") from None
        out = {name: path / file for name, file in weight_map.items()}
        for file in set(out.values()):
            if not file.is_file():
                raise ModelLoadError(f"{index}: lists {file.name}, which does not exist")
        return out
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"{path}: no safetensors weights (pickle checkpoints are not merged)")
    out = {}
    for file in files:
        for name in _header(file):
            if name in out:
                raise ModelLoadError(f"{path}: tensor {name!r} is in {out[name].name} and {file}")
            out[name] = file
    return out


def _header(file: Path) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """Name -> (dtype, shape) of every tensor in one safetensors file (no data read)."""
    try:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            info = {}
            for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                sl = f.get_slice(name)
                info[name] = (ST_DTYPES[sl.get_dtype()], tuple(sl.get_shape()))
            return info
    except (SafetensorError, OSError) as e:
        raise ModelLoadError(f"{file}: not a valid safetensors file ({e})") from None
    except KeyError as e:
        raise ModelLoadError(f"{file}: unsupported tensor dtype {e}") from None
