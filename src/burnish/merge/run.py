"""The streaming merge: one tensor name at a time, from every input model to the output.

For each tensor name the merge reads that tensor from each input (and the base), combines
them with the configured method, optionally applies AIM, writes the result to its planned
shard and lets go of it. Peak memory is a few tensors per input model, never a whole model.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from burnish.errors import ModelLoadError, OutputExistsError
from burnish.io import check_output_dir
from burnish.merge.aim import aim_relax, channel_importance, module_omega
from burnish.merge.aim_stats import compute_or_load_stats
from burnish.merge.config import AIMConfig, MergeConfig
from burnish.merge.lazy import LazyCheckpoint
from burnish.merge.output import write_checkpoint
from burnish.merge.registry import call_method, get_method
from burnish.merge.writer import TensorSpec, parse_size
from burnish.models.io import parse_dtype
from burnish.models.zoo import resolve_model

__all__ = ["MergeResult", "apply_aim", "check_compatible", "check_merge_output", "run_merge"]

_TIED_OUTPUT = "lm_head.weight"  # absent from checkpoints of tied models


@dataclass(frozen=True)
class MergeResult:
    """What a merge wrote."""

    output: Path
    tensors: int
    shards: int
    seconds: float
    input_bytes: int  # weights of all inputs (base included)
    aim_stats: Path | None = None


def check_compatible(reference: LazyCheckpoint, others: list[LazyCheckpoint]) -> list[str]:
    """The tensor names to merge; ModelLoadError naming the tensor if the models differ.

    Models must share architecture, tensor names and shapes. A tied model's checkpoint has no
    separate output embedding; one that stores a copy anyway is accepted and the copy ignored.
    """
    arch = _arch(reference)
    names = _names(reference)
    for other in others:
        if _arch(other) != arch:
            raise ModelLoadError(
                f"{other.path}: architecture {_arch(other)} differs from {reference.path} ({arch})"
            )
        theirs = set(_names(other))
        for name in names:
            if name not in theirs:
                raise ModelLoadError(f"{other.path}: no tensor {name!r} (in {reference.path})")
            if other.shape(name) != reference.shape(name):
                raise ModelLoadError(
                    f"tensor {name!r}: shape {list(other.shape(name))} in {other.path} but "
                    f"{list(reference.shape(name))} in {reference.path}"
                )
        extra = sorted(theirs - set(names))
        if extra:
            raise ModelLoadError(f"{other.path}: tensor {extra[0]!r} not in {reference.path}")
    return names


def _arch(ckpt: LazyCheckpoint) -> tuple:
    return (ckpt.config.get("model_type"), tuple(ckpt.config.get("architectures") or ()))


def _names(ckpt: LazyCheckpoint) -> list[str]:
    tied = ckpt.config.get("tie_word_embeddings", False)
    return [n for n in ckpt.names() if not (tied and n == _TIED_OUTPUT)]


def _generator(seed: int, name: str) -> torch.Generator:
    """A generator seeded by (seed, tensor name): order-independent, reproducible drops."""
    digest = hashlib.sha256(f"{seed}|{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _specs(
    reference: LazyCheckpoint, names: list[str], dtype: torch.dtype | None
) -> list[TensorSpec]:
    out = []
    for n in names:
        src = reference.dtype(n)
        out.append(
            TensorSpec(n, reference.shape(n), dtype if dtype and src.is_floating_point else src)
        )
    return out


class _Relaxer:
    """Applies AIM to the tensors that have statistics, with per-module omega."""

    def __init__(self, stats: dict[str, torch.Tensor], aim: AIMConfig) -> None:
        self.stats = stats
        self.aim = aim

    def __call__(self, name: str, merged: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        if name not in self.stats or not merged.is_floating_point():
            return merged
        importance = channel_importance(self.stats[name])  # [C]
        if importance.numel() != merged.shape[-1]:
            raise ModelLoadError(
                f"tensor {name!r}: AIM statistics have {importance.numel()} channels, the "
                f"weight has {merged.shape[-1]} input channels (statistics of another model?)"
            )
        omega = module_omega(name.removesuffix(".weight"), self.aim.omega, self.aim.omega_by_module)
        return aim_relax(merged, base, importance, omega)


def _relaxer(aim: AIMConfig | None, base: LazyCheckpoint) -> tuple[_Relaxer | None, Path | None]:
    if aim is None:
        return None, None
    stats, path = compute_or_load_stats(
        base.path,
        aim.data,
        aim.stats,
        aim.block_size,
        aim.max_texts,
        aim.batch_size,
        chat_template=aim.chat_template,
    )
    return _Relaxer(stats, aim), path


def check_merge_output(out: str | Path, inputs: list[Path], overwrite: bool) -> Path:
    """Refuse an output folder that is (or lies inside) an input model, or that already holds
    files, unless ``overwrite`` (then only the files the merge writes are replaced)."""
    target = Path(out).resolve()
    for model in inputs:
        source = Path(model).resolve()
        if target == source or source in target.parents:
            raise OutputExistsError(
                f"{out}: is {'' if target == source else 'inside '}the input model {model}; "
                "the merge would replace it: choose an output folder outside every input model"
            )
    return check_output_dir(out, overwrite=overwrite, what="output model folder")


def _tokenizer_dir(config: MergeConfig) -> Path:
    if config.tokenizer_source == "base":
        return resolve_model(config.base_model or config.models[0].model)
    return resolve_model(config.tokenizer_source)


def run_merge(
    config: MergeConfig,
    out: str | Path,
    *,
    max_shard_size: int | str | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> MergeResult:
    """Merge the configured models into a new HF directory ``out`` (written atomically).

    Args:
        config: the validated merge configuration (see :class:`MergeConfig`).
        out: output directory; it lands only when the merge completes. An existing non-empty
            folder is refused unless ``overwrite`` (which replaces only what the merge writes),
            and so is a folder that is or lies inside an input model.
        max_shard_size: override ``config.max_shard_size`` (e.g. "2GB" or bytes).
        progress: show a progress bar over tensors.
    """
    t0 = time.perf_counter()
    method = get_method(config.merge_method)
    readers = [LazyCheckpoint(resolve_model(m.model)) for m in config.merged_models()]
    base = LazyCheckpoint(resolve_model(config.base_model)) if config.base_model else None
    tok_dir = _tokenizer_dir(config)
    check_merge_output(out, [r.path for r in [base, *readers] if r] + [tok_dir], overwrite)
    reference = base or readers[0]
    names = check_compatible(reference, [r for r in [base, *readers] if r is not reference and r])
    dtype = parse_dtype(config.dtype) if config.dtype else None
    relax, stats_path = _relaxer(config.aim, base) if base else (None, None)
    weights, densities = config.weights(), config.densities()
    options = config.parameters.method_options()

    def compute(name: str) -> torch.Tensor:
        models = [r.read(name) for r in readers]  # one tensor per input model
        if not models[0].is_floating_point():
            return reference.read(name)
        b = base.read(name) if base is not None and (method.needs_base or relax) else None
        gen = _generator(config.seed, name) if method.seeded else None
        merged = call_method(method, b, models, weights, densities, options, gen)
        return relax(name, merged, b) if relax is not None else merged

    shards = write_checkpoint(
        out,
        _specs(reference, names, dtype),
        compute,
        config_dir=reference.path,
        tokenizer_dir=tok_dir,
        dtype=dtype,
        extra_files={"merge_config.yaml": _dump(config)},
        max_shard_bytes=parse_size(max_shard_size or config.max_shard_size),
        progress=progress,
    )
    inputs = sum(r.total_bytes for r in [base, *readers] if r is not None)
    return MergeResult(Path(out), len(names), shards, time.perf_counter() - t0, inputs, stats_path)


def apply_aim(
    merged: str | Path,
    base: str | Path,
    out: str | Path,
    aim: AIMConfig | None = None,
    *,
    max_shard_size: int | str = "5GB",
    progress: bool = False,
    overwrite: bool = False,
) -> MergeResult:
    """AIM as a post-step on any merged model: relax ``merged`` towards ``base`` into ``out``.

    Tensors without statistics (embeddings, biases) are copied from ``merged`` unchanged; the
    output keeps ``merged``'s dtypes, config and tokenizer. ``out`` is refused as in
    :func:`run_merge`.
    """
    t0 = time.perf_counter()
    aim = aim or AIMConfig()
    merged_ckpt = LazyCheckpoint(resolve_model(merged))
    base_ckpt = LazyCheckpoint(resolve_model(base))
    check_merge_output(out, [merged_ckpt.path, base_ckpt.path], overwrite)
    names = check_compatible(merged_ckpt, [base_ckpt])
    relax, stats_path = _relaxer(aim, base_ckpt)
    assert relax is not None

    def compute(name: str) -> torch.Tensor:
        m = merged_ckpt.read(name)
        return relax(name, m, base_ckpt.read(name)) if name in relax.stats else m

    shards = write_checkpoint(
        out,
        _specs(merged_ckpt, names, None),
        compute,
        config_dir=merged_ckpt.path,
        tokenizer_dir=merged_ckpt.path,
        dtype=None,
        extra_files={"aim_config.yaml": yaml.safe_dump(aim.model_dump(), sort_keys=False)},
        max_shard_bytes=parse_size(max_shard_size),
        progress=progress,
        label="aim",
    )
    inputs = merged_ckpt.total_bytes + base_ckpt.total_bytes
    return MergeResult(Path(out), len(names), shards, time.perf_counter() - t0, inputs, stats_path)


def _dump(config: MergeConfig) -> str:
    return yaml.safe_dump(config.model_dump(by_alias=True, exclude_none=True), sort_keys=False)
