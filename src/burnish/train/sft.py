"""The SFT recipe: packed, padding-free supervised fine-tuning as one readable loop.

setup (model, data, optimizer) -> for each effective batch: plan packed minibatches for this
rank, accumulate the per-token-mean loss, sync, clip, step, log -> checkpoints -> summary.
Runs as one process, or under ``torchrun`` (gloo on CPU, NCCL on GPU) with the same losses
for the same global batch.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from burnish.data.dataset import TokenizedDataset, prepare_dataset, write_report
from burnish.data.packing import PackedBatch, collate_packed, plan_minibatches
from burnish.io import append_jsonl, atomic_write_text, read_jsonl
from burnish.models.io import load_model, parse_dtype, save_model
from burnish.models.zoo import resolve_model
from burnish.train.checkpoint import TrainerState, load_state, save_state, truncate_metrics
from burnish.train.config import SFTConfig
from burnish.train.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    full_state_dicts,
    init_distributed,
    resolve_device,
    shard_by_tokens,
    shard_model,
)
from burnish.train.metrics import early_signals
from burnish.train.step import build_optimizer, build_scheduler, train_step

__all__ = ["SFTResult", "TrainingMethod", "epoch_batches", "rank_minibatches", "run_sft", "sft"]


class TrainingMethod(Protocol):
    """What a method (OSFT, ...) plugs into the SFT loop."""

    supports_sharding: bool

    def setup(self, model: PreTrainedModel, data: TokenizedDataset) -> None: ...

    def after_backward(self) -> None: ...

    def after_step(self) -> None: ...


@dataclass
class SFTResult:
    """Where a run put its outputs, and its headline numbers."""

    output_dir: Path
    final_model: Path
    steps: int
    final_loss: float
    early_signals: dict


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The effective batches (sample indices) of one epoch: a seeded shuffle, cut in order.

    The last batch may be smaller. Every rank computes the same list.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def rank_minibatches(
    batch: list[int],
    data: TokenizedDataset,
    info: DistInfo,
    row_len: int,
    max_tokens: int,
    pad_id: int,
    mask_dtype: torch.dtype,
) -> tuple[list[PackedBatch], int]:
    """This rank's packed minibatches of an effective batch, and the batch's total loss tokens."""
    lengths = data.lengths()
    counts = data.loss_tokens()
    total = sum(counts[i] for i in batch)
    mine = shard_by_tokens(batch, lengths, info.world_size)[info.rank]
    if not mine:
        return [], total
    local = [lengths[i] for i in mine]
    plans = plan_minibatches(local, row_len, max_tokens)
    out = [
        collate_packed(
            [[mine[j] for j in row] for row in rows],
            data.input_ids,
            data.labels,
            pad_id,
            mask_dtype,
        )
        for rows in plans
    ]
    return out, total


def _config_hash(cfg: SFTConfig) -> str:
    keep = cfg.model_dump(
        exclude={
            "save_every_samples",
            "save_epoch_end",
            "save_state",
            "save_state_every_steps",
            "device",
        }
    )
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def _save_checkpoint(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, path: Path, info: DistInfo
) -> None:
    """An HF directory of the full weights (gathered from all ranks when sharded)."""
    weights, _ = full_state_dicts(model)
    if info.is_main:
        save_model(model, tok, path, state_dict=weights)
    barrier(info)


def _save_full_state(
    out: Path,
    state: TrainerState,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    info: DistInfo,
) -> None:
    weights, optim_state = full_state_dicts(model, optimizer)  # collective when sharded
    if info.is_main:
        save_state(out, state, weights, optim_state, scheduler)
    barrier(info)


def _progress(
    total: int, enabled: bool, done: int = 0
) -> tuple[Callable[[dict], None], Callable[[], None]]:
    """A rich progress bar over optimizer steps (no-op when disabled)."""
    if not enabled:
        return (lambda _row: None), (lambda: None)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("sft"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    task = bar.add_task("steps", total=total, completed=done, info="")
    bar.start()

    def update(row: dict) -> None:
        bar.update(
            task, completed=row["step"], info=f"loss {row['loss']:.4f} gnorm {row['grad_norm']:.3f}"
        )

    return update, bar.stop


def _steps(data_len: int, cfg: SFTConfig) -> list[tuple[int, int, list[int], bool]]:
    """(epoch, batch_in_epoch, indices, is_last_of_epoch) for the whole run, in order."""
    plan = []
    for epoch in range(cfg.epochs):
        batches = epoch_batches(data_len, cfg.effective_batch_size, cfg.seed, epoch)
        plan += [(epoch, b, batch, b + 1 == len(batches)) for b, batch in enumerate(batches)]
    return plan


def _compute_dtype(cfg: SFTConfig, device: torch.device) -> torch.dtype | None:
    """The mixed-precision compute dtype, or None for full precision."""
    if cfg.mixed_precision == "bf16" or (cfg.mixed_precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def _due(samples_seen: int, every: int | None, batch_len: int) -> bool:
    """True when this step crossed a multiple of ``every`` samples."""
    return bool(every) and samples_seen // every > (samples_seen - batch_len) // every


def run_sft(
    cfg: SFTConfig,
    resume: bool = False,
    progress: bool = True,
    model: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    stop_after_steps: int | None = None,
    method: TrainingMethod | None = None,
) -> SFTResult:
    """Run the SFT recipe described by ``cfg``.

    Args:
        resume: continue from ``output_dir/state`` (same config) instead of starting fresh.
        progress: show a progress bar on the main rank.
        model, tokenizer: an already-loaded model to train instead of loading ``cfg.model``.
        stop_after_steps: stop (after saving a resumable state) once this many steps are done;
            simulates an interruption in tests.
        method: hooks that change how weights may move (e.g. :class:`burnish.train.osft.OSFT`);
            its ``setup`` sees the freshly loaded weights, also when resuming.
    """
    # --- setup ---------------------------------------------------------------------------
    info = init_distributed(resolve_device(cfg.device))
    device = resolve_device(cfg.device, info)
    out = Path(cfg.output_dir)
    if model is None:
        model, tokenizer = load_model(
            resolve_model(cfg.model),
            dtype=cfg.dtype,
            device=device,
            allow_pickle=cfg.allow_pickle,
            trust_remote_code=cfg.trust_remote_code,
        )
    if tokenizer is None:
        raise ValueError("pass the tokenizer together with an already-loaded model")
    model.to(device)
    torch.manual_seed(cfg.seed)
    data = prepare_dataset(Path(cfg.data), tokenizer, cfg.max_seq_len, cfg.cache_dir)
    plan = _steps(len(data), cfg)
    total_steps = min(len(plan), cfg.max_steps or len(plan))
    compute_dtype = _compute_dtype(cfg, device)
    if method is not None:
        method.setup(model, data)
    allow_shard = method is None or method.supports_sharding
    sharded = allow_shard and shard_model(model, info, compute_dtype)
    autocast = compute_dtype is not None and not sharded
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay)
    scheduler = build_scheduler(optimizer, cfg.lr_scheduler, cfg.warmup_steps, total_steps)
    metrics_path = out / "metrics.jsonl"
    chash = _config_hash(cfg)
    state = TrainerState(config_hash=chash)
    if resume:
        state = load_state(out, model, optimizer, scheduler, chash)
        if info.is_main:
            truncate_metrics(metrics_path, state.step)
    elif info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        metrics_path.unlink(missing_ok=True)
        write_report(data.report, out / "data_report.json")
        atomic_write_text(out / "config.json", cfg.model_dump_json(indent=2) + "\n")
    barrier(info)
    mask_dtype = compute_dtype or parse_dtype(cfg.dtype)  # sdpa wants the compute dtype
    update_bar, stop_bar = _progress(total_steps, progress and info.is_main, state.step)
    saved_at = state.step  # the step of the last full state on disk (or the start)
    last_loss = float("nan")

    # --- train loop ----------------------------------------------------------------------
    for step, (epoch, b, batch, epoch_end) in enumerate(plan[:total_steps]):
        if step < state.step:
            continue  # already done before the interruption
        t0 = time.perf_counter()
        mbs, total_loss_tokens = rank_minibatches(
            batch,
            data,
            info,
            cfg.max_seq_len,
            cfg.max_tokens_per_step,
            tokenizer.pad_token_id,
            mask_dtype,
        )
        mbs = [mb.to(device) for mb in mbs]
        with torch.autocast(device.type, dtype=compute_dtype or torch.float32, enabled=autocast):
            loss, gnorm = train_step(
                model,
                optimizer,
                mbs,
                total_loss_tokens,
                cfg.grad_clip,
                info,
                sharded,
                after_backward=method.after_backward if method else None,
            )
        if method is not None:
            method.after_step()
        scheduler.step()
        dt = time.perf_counter() - t0
        slots = torch.tensor(
            [sum(m.real_tokens for m in mbs), sum(m.input_ids.numel() for m in mbs)],
            dtype=torch.float64,
            device=device,
        )
        real, total = all_reduce_sum(slots, info).tolist()
        state = TrainerState(step + 1, epoch, b + 1, state.samples_seen + len(batch), chash)
        last_loss = loss
        row = {
            "step": state.step,
            "epoch": epoch,
            "samples": state.samples_seen,
            "loss": loss,
            "grad_norm": gnorm,
            "lr": scheduler.get_last_lr()[0],
            "tokens_per_s": real / dt,
            "padding_share": 1.0 - real / max(1.0, total),
            "loss_tokens": total_loss_tokens,
            "minibatches": len(mbs),
        }
        if info.is_main:
            append_jsonl(metrics_path, row)
        update_bar(row)
        due = _due(state.samples_seen, cfg.save_every_samples, len(batch))
        if due:
            name = f"samples_{state.samples_seen}"
            _save_checkpoint(model, tokenizer, out / "checkpoints" / name, info)
        if epoch_end and cfg.save_epoch_end:
            _save_checkpoint(model, tokenizer, out / "checkpoints" / f"epoch_{epoch + 1}", info)
        interrupted = stop_after_steps is not None and state.step >= stop_after_steps
        every = cfg.save_state_every_steps
        periodic = every is not None and state.step % every == 0
        if cfg.save_state and (epoch_end or interrupted or due or periodic):
            _save_full_state(out, state, model, optimizer, scheduler, info)
            saved_at = state.step
        if interrupted:
            stop_bar()
            return SFTResult(out, out / "state", state.step, last_loss, {})

    # --- finish --------------------------------------------------------------------------
    stop_bar()
    if cfg.save_state and saved_at != state.step:  # a later --resume finds the run complete
        _save_full_state(out, state, model, optimizer, scheduler, info)
    _save_checkpoint(model, tokenizer, out / "final", info)
    signals: dict = {}
    if info.is_main:
        rows = read_jsonl(metrics_path)
        last_loss = rows[-1]["loss"] if rows else last_loss
        signals = early_signals(rows, cfg.early_signal_steps)
        summary = {
            "steps": state.step,
            "final_loss": rows[-1]["loss"] if rows else None,
            "early_signals": signals,
            "data": data.report.__dict__,
        }
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        _plot_losses(rows, out / "loss.png")
    return SFTResult(out, out / "final", state.step, last_loss, signals)


def _plot_losses(rows: list[dict], path: Path) -> None:
    from burnish.eval.plots import plot_loss_curve

    if rows:
        plot_loss_curve(rows, path)


def sft(
    model: str,
    data: str,
    output_dir: str = "runs/sft",
    resume: bool = False,
    progress: bool = True,
    **options: object,
) -> SFTResult:
    """Python API: ``burnish.sft(model="base", data="train.jsonl", lr=1e-3, epochs=2)``.

    ``options`` are SFTConfig fields; unknown names raise ConfigError.
    """
    from burnish.train.config import load_config

    cfg = load_config(
        SFTConfig, None, {"model": model, "data": data, "output_dir": output_dir, **options}
    )
    return run_sft(cfg, resume=resume, progress=progress)
