"""Write a merged HF model directory: streamed weights, config, tokenizer, atomically."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from burnish.io import MODEL_WEIGHT_FILES, atomic_dir
from burnish.merge.writer import ShardedWriter, TensorSpec
from burnish.models.io import load_tokenizer
from burnish.progress import progress_bar

__all__ = ["write_checkpoint"]


def write_checkpoint(
    out: str | Path,
    specs: list[TensorSpec],
    compute: Callable[[str], torch.Tensor],
    *,
    config_dir: Path,
    tokenizer_dir: Path,
    dtype: torch.dtype | None,
    extra_files: dict[str, str],
    max_shard_bytes: int,
    progress: bool = False,
    label: str = "merging",
) -> int:
    """Compute and write each tensor of ``specs`` in turn into a new HF directory ``out``.

    ``compute(name)`` returns the tensor (cast to the spec's dtype here). config.json (and
    generation_config.json) come from ``config_dir``, with ``dtype`` recorded if given; the
    tokenizer is loaded from ``tokenizer_dir`` and saved. Nothing is left at ``out`` if
    anything fails. Returns the number of shards.
    """
    with atomic_dir(out, stale=MODEL_WEIGHT_FILES) as tmp:
        writer = ShardedWriter(tmp, specs, max_shard_bytes)
        try:
            with progress_bar(len(specs), label, progress) as advance:
                for spec in specs:
                    writer.write(spec.name, compute(spec.name).to(spec.dtype))
                    advance(info=spec.name)
        finally:
            writer.close()
        writer.finish()
        _write_config(config_dir, tmp, dtype)
        load_tokenizer(tokenizer_dir).save_pretrained(str(tmp))
        for name, text in extra_files.items():
            (tmp / name).write_text(text, encoding="utf-8")
    return len(writer.shards)


def _write_config(src: Path, dst: Path, dtype: torch.dtype | None) -> None:
    cfg = json.loads((src / "config.json").read_text())
    if dtype is not None:
        cfg["dtype"] = str(dtype).removeprefix("torch.")
    (dst / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    if (src / "generation_config.json").is_file():
        shutil.copyfile(src / "generation_config.json", dst / "generation_config.json")
