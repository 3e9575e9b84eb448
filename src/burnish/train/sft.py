"""The SFT recipe: packed, padding-free supervised fine-tuning as one readable loop.

setup (model, data, optimizer) -> for each effective batch: plan packed minibatches for this
rank, accumulate the per-token-mean loss, sync, clip, step, log -> checkpoints -> summary.
Runs as one process, or under ``torchrun`` (gloo on CPU, NCCL on GPU) with the same losses
for the same global batch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from burnish.data.dataset import DataReport, TokenizedDataset, prepare_dataset, write_report
from burnish.data.packing import PackedBatch, collate_packed, plan_minibatches
from burnish.errors import BurnishError, ConfigError
from burnish.io import append_jsonl, atomic_write_text, check_output_dir, read_jsonl, remove_owned
from burnish.models.io import (
    load_model,
    model_fingerprint,
    parse_dtype,
    read_chat_template,
    save_model,
)
from burnish.models.zoo import resolve_model
from burnish.progress import progress_bar
from burnish.seeding import seeded
from burnish.train.checkpoint import (
    STATE_DIR,
    TrainerState,
    load_state,
    save_state,
    truncate_metrics,
)
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

__all__ = [
    "RUN_OUTPUTS",
    "SFTResult",
    "TrainingMethod",
    "epoch_batches",
    "prepare_run_dir",
    "rank_minibatches",
    "run_fingerprint",
    "run_sft",
    "sft",
]


class TrainingMethod(Protocol):
    """What a method (OSFT, ...) plugs into the SFT loop."""

    name: str  # shown on the progress bar (e.g. "osft")
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
    data_report: DataReport


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


# What a run writes in its output folder: the only entries --overwrite may replace.
RUN_OUTPUTS = (
    "metrics.jsonl",
    "summary.json",
    "config.json",
    "data_report.json",
    "loss.png",
    "state",
    "final",
    "checkpoints",
)
# Config fields that may change between a stopped run and its resume: where things go, how
# often they are saved, how long to train (extending is allowed), and paths whose *content*
# is compared instead (model, data).
_RESUMABLE_CHANGES = {
    "model",
    "data",
    "output_dir",
    "device",
    "cache_dir",
    "save_every_samples",
    "save_epoch_end",
    "save_state",
    "save_state_every_steps",
    "early_signal_steps",
    "max_steps",
    "epochs",
    "allow_pickle",
    "trust_remote_code",
    "chat_template",
}


def prepare_run_dir(
    out: Path, resume: bool, overwrite: bool, outputs: Sequence[str] = RUN_OUTPUTS
) -> None:
    """Refuse to start a run over an earlier one unless ``resume`` or ``overwrite``.

    ``overwrite`` removes what an earlier run wrote there (``outputs``, by default
    :data:`RUN_OUTPUTS`) and nothing else; ``resume`` needs a saved state.
    """
    if resume and overwrite:
        raise ConfigError("choose one of --resume (continue the run) and --overwrite (restart)")
    check_output_dir(out, overwrite=overwrite, resume=resume, what="run folder")
    if resume and not (out / STATE_DIR / "trainer_state.json").is_file():
        raise BurnishError(f"{out / STATE_DIR}: no resumable state here (run without --resume)")
    if overwrite:
        remove_owned(out, outputs)


def run_fingerprint(cfg: SFTConfig, model: PreTrainedModel, data: TokenizedDataset) -> dict:
    """What a resumed run must share with the run that saved the state: every setting that
    changes the trajectory, the starting weights and the tokenized training samples."""
    keep = cfg.model_dump(exclude=_RESUMABLE_CHANGES)
    return {**keep, "model": model_fingerprint(model), "data": data.fingerprint()}


@dataclass
class _Setup:
    """Everything the loop needs, built by the named setup steps of :func:`run_sft`."""

    info: DistInfo
    device: torch.device
    out: Path
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    data: TokenizedDataset
    plan: list[tuple[int, int, list[int], bool]]
    total_steps: int
    compute_dtype: torch.dtype | None
    sharded: bool
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    state: TrainerState
    saved_at: int = 0  # the step of the last full state on disk (or the start)
    last_loss: float = float("nan")


def _setup_model(
    cfg: SFTConfig,
    device: torch.device,
    model: PreTrainedModel | None,
    tokenizer: PreTrainedTokenizerBase | None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
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
    if cfg.chat_template is not None:
        tokenizer.chat_template = read_chat_template(cfg.chat_template)
    return model.to(device), tokenizer


def _setup_optimization(
    cfg: SFTConfig, model: PreTrainedModel, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay)
    return optimizer, build_scheduler(optimizer, cfg.lr_scheduler, cfg.warmup_steps, total_steps)


def _setup(
    cfg: SFTConfig,
    resume: bool,
    overwrite: bool,
    model: PreTrainedModel | None,
    tokenizer: PreTrainedTokenizerBase | None,
    method: TrainingMethod | None,
) -> _Setup:
    """Output folder, model, data, method, sharding, optimizer and schedule, resume state."""
    info = init_distributed(resolve_device(cfg.device))
    device = resolve_device(cfg.device, info)
    out = Path(cfg.output_dir)
    if info.is_main:
        prepare_run_dir(out, resume, overwrite)
    barrier(info)
    model, tokenizer = _setup_model(cfg, device, model, tokenizer)
    data = prepare_dataset(Path(cfg.data), tokenizer, cfg.max_seq_len, cfg.cache_dir)
    if data.report.longest_kept > cfg.max_tokens_per_step:
        raise ConfigError(
            f"{cfg.data}: a sample has {data.report.longest_kept} tokens, more than "
            f"max_tokens_per_step={cfg.max_tokens_per_step} (the most one minibatch holds); "
            "raise max_tokens_per_step, or lower max_seq_len so such samples are dropped"
        )
    fingerprint = run_fingerprint(cfg, model, data)  # the starting weights, before any step
    plan = _steps(len(data), cfg)
    total_steps = min(len(plan), cfg.max_steps or len(plan))
    compute_dtype = _compute_dtype(cfg, device)
    if method is not None:
        method.setup(model, data)
    allow_shard = method is None or method.supports_sharding
    sharded = allow_shard and shard_model(model, info, compute_dtype)
    optimizer, scheduler = _setup_optimization(cfg, model, total_steps)
    state = TrainerState(fingerprint=fingerprint)
    if resume:
        state = load_state(out, model, optimizer, scheduler, fingerprint)
        if info.is_main:
            truncate_metrics(out / "metrics.jsonl", state.step)
    elif info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_report(data.report, out / "data_report.json")
        atomic_write_text(out / "config.json", cfg.model_dump_json(indent=2) + "\n")
    barrier(info)
    return _Setup(
        info=info,
        device=device,
        out=out,
        model=model,
        tokenizer=tokenizer,
        data=data,
        plan=plan,
        total_steps=total_steps,
        compute_dtype=compute_dtype,
        sharded=sharded,
        optimizer=optimizer,
        scheduler=scheduler,
        state=state,
        saved_at=state.step,
    )


def run_sft(
    cfg: SFTConfig,
    resume: bool = False,
    progress: bool = True,
    model: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    method: TrainingMethod | None = None,
    overwrite: bool = False,
) -> SFTResult:
    """Run the SFT recipe described by ``cfg``.

    Args:
        resume: continue from ``output_dir/state``. The settings that shape the trajectory,
            the starting weights and the training samples must match the saved run (compared
            by content: a moved run folder or a respelled data path resumes); ``max_steps``
            and ``epochs`` may be raised. A mismatch names the field.
        progress: show a progress bar on the main rank.
        model, tokenizer: an already-loaded model to train instead of loading ``cfg.model``.
        method: hooks that change how weights may move (e.g. :class:`burnish.train.osft.OSFT`);
            its ``setup`` sees the freshly loaded weights, also when resuming.
        overwrite: start over in an ``output_dir`` that holds an earlier run (only what a run
            writes there is removed). Without it (or ``resume``) a non-empty folder is refused.
    """
    # Dropout and any other global-RNG draw start from cfg.seed (a resume restores the saved
    # RNG state) without changing the caller's RNG.
    with seeded(cfg.seed, resolve_device(cfg.device)):
        run = _setup(cfg, resume, overwrite, model, tokenizer, method)
        label = getattr(method, "name", "sft")
        enabled = progress and run.info.is_main
        with progress_bar(run.total_steps, label, enabled, run.state.step) as advance:

            def update_bar(row: dict) -> None:
                info = f"loss {row['loss']:.4f} gnorm {row['grad_norm']:.3f}"
                advance(completed=row["step"], info=info)

            _train_loop(cfg, run, method, update_bar)
        return _finish(cfg, run)


def _train_loop(
    cfg: SFTConfig,
    run: _Setup,
    method: TrainingMethod | None,
    update_bar: Callable[[dict], None],
) -> None:
    """Train the remaining steps of the plan, saving checkpoints and states as configured."""
    info, out, state = run.info, run.out, run.state
    mask_dtype = run.compute_dtype or parse_dtype(cfg.dtype)  # sdpa wants the compute dtype
    autocast = run.compute_dtype is not None and not run.sharded
    for step, (epoch, b, batch, epoch_end) in enumerate(run.plan[: run.total_steps]):
        if step < state.step:
            continue  # already done before the interruption
        t0 = time.perf_counter()
        mbs, total_loss_tokens = rank_minibatches(
            batch,
            run.data,
            info,
            min(cfg.max_seq_len, cfg.max_tokens_per_step),  # a row never exceeds a minibatch
            cfg.max_tokens_per_step,
            run.tokenizer.pad_token_id,
            mask_dtype,
        )
        mbs = [mb.to(run.device) for mb in mbs]
        dtype = run.compute_dtype or torch.float32
        with torch.autocast(run.device.type, dtype=dtype, enabled=autocast):
            loss, gnorm = train_step(
                run.model,
                run.optimizer,
                mbs,
                total_loss_tokens,
                cfg.grad_clip,
                info,
                run.sharded,
                after_backward=method.after_backward if method else None,
            )
        if method is not None:
            method.after_step()
        run.scheduler.step()
        dt = time.perf_counter() - t0
        slots = torch.tensor(
            [sum(m.real_tokens for m in mbs), sum(m.input_ids.numel() for m in mbs)],
            dtype=torch.float64,
            device=run.device,
        )
        real, total = all_reduce_sum(slots, info).tolist()
        state = TrainerState(
            step + 1, epoch, b + 1, state.samples_seen + len(batch), state.fingerprint
        )
        run.state = state
        run.last_loss = loss
        row = {
            "step": state.step,
            "epoch": epoch,
            "samples": state.samples_seen,
            "loss": loss,
            "grad_norm": gnorm,
            "lr": run.scheduler.get_last_lr()[0],
            "tokens_per_s": real / dt,
            "padding_share": 1.0 - real / max(1.0, total),
            "loss_tokens": total_loss_tokens,
            "minibatches": len(mbs),
        }
        if info.is_main:
            append_jsonl(out / "metrics.jsonl", row)
        update_bar(row)
        due = _due(state.samples_seen, cfg.save_every_samples, len(batch))
        if due:
            name = f"samples_{state.samples_seen}"
            _save_checkpoint(run.model, run.tokenizer, out / "checkpoints" / name, info)
        if epoch_end and cfg.save_epoch_end:
            path = out / "checkpoints" / f"epoch_{epoch + 1}"
            _save_checkpoint(run.model, run.tokenizer, path, info)
        every = cfg.save_state_every_steps
        periodic = every is not None and state.step % every == 0
        if cfg.save_state and (epoch_end or due or periodic):
            _save_full_state(out, state, run.model, run.optimizer, run.scheduler, info)
            run.saved_at = state.step


def _finish(cfg: SFTConfig, run: _Setup) -> SFTResult:
    """Final state (so a later --resume finds the run complete), final checkpoint, summary."""
    info, out, state = run.info, run.out, run.state
    if cfg.save_state and run.saved_at != state.step:
        _save_full_state(out, state, run.model, run.optimizer, run.scheduler, info)
    _save_checkpoint(run.model, run.tokenizer, out / "final", info)
    signals: dict = {}
    last_loss = run.last_loss
    if info.is_main:
        rows = read_jsonl(out / "metrics.jsonl") if (out / "metrics.jsonl").is_file() else []
        last_loss = rows[-1]["loss"] if rows else last_loss
        signals = early_signals(rows, cfg.early_signal_steps)
        summary = {
            "steps": state.step,
            "final_loss": rows[-1]["loss"] if rows else None,
            "early_signals": signals,
            "data": asdict(run.data.report),
        }
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        _plot_losses(rows, out / "loss.png")
    return SFTResult(out, out / "final", state.step, last_loss, signals, run.data.report)


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
    overwrite: bool = False,
    **options: object,
) -> SFTResult:
    """Python API: ``burnish.sft(model="base", data="train.jsonl", lr=1e-3, epochs=2)``.

    ``options`` are SFTConfig fields; unknown names raise ConfigError. ``resume`` and
    ``overwrite`` as in :func:`run_sft`.
    """
    from burnish.config import load_config

    cfg = load_config(
        SFTConfig, None, {"model": model, "data": data, "output_dir": output_dir, **options}
    )
    return run_sft(cfg, resume=resume, progress=progress, overwrite=overwrite)
