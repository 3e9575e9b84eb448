"""The preference-tuning recipe (DPO, IPO, hinge, SimPO) on the SFT machinery, one loop.

setup (model, pairs, reference log-probs once, optimizer) -> for each effective batch of
pairs: this rank's pairs packed padding-free into rows of at most 2 x max_seq_len tokens (a
pair's chosen and rejected always share a row, so its loss sees both), per-sequence log-prob
sums from the packed rows, the loss over the step's pairs, sync, clip, step, log (TRL's
metric names) -> checkpoints -> summary.

The reference model's log-probs of every chosen and rejected response are computed once,
before the first step, and cached in the run folder (``reference_logps.safetensors``, keyed
by the data and reference fingerprints), so training runs only the policy and a resume reuses
them. Runs as one process or under ``torchrun`` (replicated or FSDP2-sharded, as SFT);
``--resume`` continues exactly (the same state machinery as SFT).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import PreTrainedModel

from burnish.data.packing import PackedBatch, collate_packed, plan_minibatches
from burnish.data.preference import PreferencePairs, load_pairs, tokenize_pairs
from burnish.data.tokenize import IGNORE_INDEX
from burnish.io import (
    append_jsonl,
    atomic_file,
    atomic_write_text,
    read_jsonl,
)
from burnish.models.io import load_model, model_fingerprint, parse_dtype, read_chat_template
from burnish.models.zoo import resolve_model
from burnish.progress import progress_bar
from burnish.seeding import seeded
from burnish.train.checkpoint import TrainerState, load_state, truncate_metrics
from burnish.train.config import DPOConfig
from burnish.train.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    init_distributed,
    resolve_device,
    shard_model,
)
from burnish.train.preference import PreferenceLoss, dpo_loss, packed_sequence_logps, simpo_loss
from burnish.train.sft import (
    _RESUMABLE_CHANGES,
    RUN_OUTPUTS,
    _compute_dtype,
    _save_checkpoint,
    _save_full_state,
    _setup_optimization,
    _steps,
    prepare_run_dir,
)
from burnish.train.step import train_step

__all__ = ["DPOResult", "PairBatch", "pair_minibatches", "run_dpo"]

REFERENCE_FILE = "reference_logps.safetensors"
DPO_OUTPUTS = (*RUN_OUTPUTS, REFERENCE_FILE)
METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


@dataclass
class PairBatch:
    """Packed rows of whole pairs: sequences [c0, r0, c1, r1, ...] of ``pairs``, row r
    holding the sequences ``rows[r]``."""

    batch: PackedBatch
    pairs: list[int]
    lengths: list[int]
    rows: list[list[int]]

    def to(self, device: torch.device) -> PairBatch:
        return PairBatch(self.batch.to(device), self.pairs, self.lengths, self.rows)

    def logps(self, model: torch.nn.Module) -> tuple[torch.Tensor, ...]:
        """(chosen sums, rejected sums, chosen tokens, rejected tokens), each [p]."""
        sums, counts = packed_sequence_logps(model, self.batch, self.rows, self.lengths)
        return sums[0::2], sums[1::2], counts[0::2], counts[1::2]


def pair_row_len(cfg: DPOConfig) -> int:
    """Tokens per packed row: two sides of ``max_seq_len`` at most, within the step's bound.
    Short rows keep attention cheap (a row's attention is quadratic in its length)."""
    return min(2 * cfg.max_seq_len, cfg.max_tokens_per_step)


def pair_minibatches(
    data: PreferencePairs,
    pairs: list[int],
    row_len: int,
    max_tokens: int,
    pad_id: int,
    mask_dtype: torch.dtype,
) -> list[PairBatch]:
    """``pairs`` packed whole into rows of at most ``row_len`` tokens (first-fit decreasing,
    so a pair is never split), rows grouped into minibatches of at most ``max_tokens``
    slots."""
    lengths = data.pair_lengths()
    out = []
    for plan in plan_minibatches([lengths[i] for i in pairs], row_len, max_tokens):
        idx = [pairs[j] for row in plan for j in row]
        ids = [t for i in idx for t in (data.chosen_ids[i], data.rejected_ids[i])]
        labels = [t for i in idx for t in (data.chosen_labels[i], data.rejected_labels[i])]
        rows, k = [], 0
        for row in plan:  # the sequences 2k, 2k + 1 of each pair, row by row
            rows.append(list(range(2 * k, 2 * (k + len(row)))))
            k += len(row)
        batch = collate_packed(rows, ids, labels, pad_id, mask_dtype)
        out.append(PairBatch(batch, idx, [len(x) for x in ids], rows))
    return out


def pair_loss(
    cfg: DPOConfig, pb: PairBatch, model: torch.nn.Module, ref: torch.Tensor | None
) -> tuple[PreferenceLoss, torch.Tensor]:
    """The preference loss of ``pb``'s pairs, and their chosen responses' summed
    log-probs [p] (for the SFT term)."""
    pc, pr, nc, nr = pb.logps(model)
    if cfg.loss == "simpo":
        return simpo_loss(pc, pr, nc, nr, cfg.beta, cfg.simpo_gamma), pc
    r = ref[pb.pairs].to(pc.device, pc.dtype)  # [p, 2]
    pl = dpo_loss(pc, pr, r[:, 0], r[:, 1], cfg.beta, cfg.loss, cfg.label_smoothing, nc, nr)
    return pl, pc


def chosen_tokens(data: PreferencePairs, pairs: list[int]) -> int:
    """Response tokens of the chosen sides of ``pairs`` (the SFT term's denominator)."""
    return sum(int((data.chosen_labels[i][1:] != IGNORE_INDEX).sum()) for i in pairs)


@torch.no_grad()
def reference_logps(
    model: PreTrainedModel,
    data: PreferencePairs,
    row_len: int,
    max_tokens: int,
    pad_id: int,
    progress: bool,
) -> torch.Tensor:
    """[P, 2] summed response log-probs (chosen, rejected) of every pair under ``model``."""
    was_training = model.training
    model.eval()
    out = torch.zeros(len(data), 2, dtype=torch.float64)
    device = next(model.parameters()).device
    mbs = pair_minibatches(data, list(range(len(data))), row_len, max_tokens, pad_id, torch.float32)
    with progress_bar(len(data), "reference", progress) as advance:
        for pb in mbs:
            pc, pr, _, _ = pb.to(device).logps(model)
            out[pb.pairs, 0], out[pb.pairs, 1] = pc.double().cpu(), pr.double().cpu()
            advance(len(pb.pairs))
    model.train(was_training)
    return out


def cached_reference(
    cfg: DPOConfig,
    out: Path,
    model: PreTrainedModel,
    data: PreferencePairs,
    pad_id: int,
    info: DistInfo,
    progress: bool,
) -> torch.Tensor:
    """The reference log-probs from ``out``'s cache when it matches, else computed (with
    ``model``'s current weights, or ``cfg.reference``'s) and cached."""
    ref_model = model
    if cfg.reference is not None:
        ref_model, _ = load_model(
            resolve_model(cfg.reference), dtype=cfg.dtype, device=next(model.parameters()).device
        )
    key = {"data": data.fingerprint(), "reference": model_fingerprint(ref_model)}
    path = out / REFERENCE_FILE
    if path.is_file():
        with safe_open(str(path), "pt") as f:
            if f.metadata() == {k: str(v) for k, v in key.items()}:
                return f.get_tensor("logps")
    logps = reference_logps(
        ref_model,
        data,
        pair_row_len(cfg),
        cfg.max_tokens_per_step,
        pad_id,
        progress and info.is_main,
    )
    if info.is_main:
        with atomic_file(path) as tmp:
            save_file({"logps": logps}, str(tmp), metadata=key)
    barrier(info)
    return logps


@dataclass
class DPOResult:
    output_dir: Path
    final_model: Path
    steps: int
    final_metrics: dict


def _step_metrics(
    losses: list[PreferenceLoss], info: DistInfo, device: torch.device
) -> dict[str, float]:
    """TRL's reward metrics over the step's pairs on every rank."""
    if losses:
        c = torch.cat([x.chosen_rewards for x in losses]).double()
        r = torch.cat([x.rejected_rewards for x in losses]).double()
        sums = torch.stack(
            [c.sum(), r.sum(), (c - r).sum(), (c > r).double().sum(), torch.tensor(float(len(c)))]
        )
    else:
        sums = torch.zeros(5, dtype=torch.float64)
    total = all_reduce_sum(sums.to(device), info).tolist()
    n = max(1.0, total[4])
    return dict(zip(METRICS, [v / n for v in total[:4]], strict=True))


@dataclass
class _Run:
    """Everything the loop needs (built by :func:`_setup`)."""

    cfg: DPOConfig
    info: DistInfo
    device: torch.device
    out: Path
    model: PreTrainedModel
    tokenizer: object
    data: PreferencePairs
    ref: torch.Tensor | None
    plan: list
    total: int
    compute_dtype: torch.dtype | None
    sharded: bool
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    state: TrainerState


def _setup(cfg: DPOConfig, resume: bool, overwrite: bool, progress: bool) -> _Run:
    """Run folder, model, pairs, reference log-probs, sharding, optimizer, resume state."""
    info = init_distributed(resolve_device(cfg.device))
    device = resolve_device(cfg.device, info)
    out = Path(cfg.output_dir)
    if info.is_main:
        prepare_run_dir(out, resume, overwrite, DPO_OUTPUTS)
    barrier(info)
    model, tok = load_model(
        resolve_model(cfg.model),
        dtype=cfg.dtype,
        device=device,
        allow_pickle=cfg.allow_pickle,
        trust_remote_code=cfg.trust_remote_code,
    )
    if cfg.chat_template is not None:
        tok.chat_template = read_chat_template(cfg.chat_template)
    data = tokenize_pairs(load_pairs(cfg.data), tok, pair_row_len(cfg), where=cfg.data)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    barrier(info)
    pad = tok.pad_token_id or 0
    ref = None
    if cfg.loss != "simpo":  # before any step: the starting weights are the default reference
        ref = cached_reference(cfg, out, model, data, pad, info, progress)
    keep = cfg.model_dump(exclude=_RESUMABLE_CHANGES - {"reference"})
    fingerprint = {**keep, "model": model_fingerprint(model), "data": data.fingerprint()}
    plan = _steps(len(data), cfg)
    total = min(len(plan), cfg.max_steps or len(plan))
    compute_dtype = _compute_dtype(cfg, device)
    sharded = shard_model(model, info, compute_dtype)
    optimizer, scheduler = _setup_optimization(cfg, model, total)
    state = TrainerState(fingerprint=fingerprint)
    if resume:
        state = load_state(out, model, optimizer, scheduler, fingerprint)
        if info.is_main:
            truncate_metrics(out / "metrics.jsonl", state.step)
    elif info.is_main:
        atomic_write_text(out / "config.json", cfg.model_dump_json(indent=2) + "\n")
    return _Run(
        cfg,
        info,
        device,
        out,
        model,
        tok,
        data,
        ref,
        plan,
        total,
        compute_dtype,
        sharded,
        optimizer,
        scheduler,
        state,
    )


def _step(run: _Run, step: int, epoch: int, b: int, batch: list[int]) -> dict:
    """One optimizer step over the effective batch ``batch`` of pairs; its metrics row."""
    cfg, info, device = run.cfg, run.info, run.device
    t0 = time.perf_counter()
    mask_dtype = run.compute_dtype or parse_dtype(cfg.dtype)
    mine = batch[info.rank :: info.world_size]
    pad = run.tokenizer.pad_token_id or 0
    mbs = pair_minibatches(
        run.data, mine, pair_row_len(cfg), cfg.max_tokens_per_step, pad, mask_dtype
    )
    mbs = [pb.to(device) for pb in mbs]
    records: list[PreferenceLoss] = []

    # The SFT term is a per-token mean over the whole effective batch's chosen responses.
    n_chosen = max(1, chosen_tokens(run.data, batch)) if cfg.sft_weight else 1

    def loss_of(pb: PairBatch) -> torch.Tensor:
        pl, chosen = pair_loss(cfg, pb, run.model, run.ref)
        records.append(PreferenceLoss(pl.losses.detach(), pl.chosen_rewards, pl.rejected_rewards))
        loss = pl.losses.sum() / len(batch)
        if cfg.sft_weight:
            loss = loss - cfg.sft_weight * chosen.sum() / n_chosen
        return loss

    autocast = run.compute_dtype is not None and not run.sharded
    dtype = run.compute_dtype or torch.float32
    with torch.autocast(device.type, dtype=dtype, enabled=autocast):
        loss, gnorm = train_step(
            run.model, run.optimizer, mbs, 1, cfg.grad_clip, info, run.sharded, loss_of=loss_of
        )
    run.scheduler.step()
    real = torch.tensor([float(sum(pb.batch.real_tokens for pb in mbs))], device=device)
    tokens = float(all_reduce_sum(real, info)[0])
    s = run.state
    run.state = TrainerState(step + 1, epoch, b + 1, s.samples_seen + len(batch), s.fingerprint)
    return {
        "step": run.state.step,
        "epoch": epoch,
        "samples": run.state.samples_seen,
        "loss": loss,
        **_step_metrics(records, info, device),
        "grad_norm": gnorm,
        "lr": run.scheduler.get_last_lr()[0],
        "tokens": tokens,  # non-padding tokens of this step's pairs
        "tokens_per_s": tokens / (time.perf_counter() - t0),
    }


def run_dpo(
    cfg: DPOConfig, resume: bool = False, progress: bool = True, overwrite: bool = False
) -> DPOResult:
    """Run the preference-tuning recipe described by ``cfg`` (see the module doc);
    ``resume`` / ``overwrite`` as in :func:`burnish.train.sft.run_sft`."""
    with seeded(cfg.seed, resolve_device(cfg.device)):
        run = _setup(cfg, resume, overwrite, progress)
        label = f"dpo ({cfg.loss})"
        with progress_bar(
            run.total, label, progress and run.info.is_main, run.state.step
        ) as advance:
            for step, (epoch, b, batch, epoch_end) in enumerate(run.plan[: run.total]):
                if step < run.state.step:
                    continue  # done before the interruption
                row = _step(run, step, epoch, b, batch)
                if run.info.is_main:
                    append_jsonl(run.out / "metrics.jsonl", row)
                advance(
                    completed=row["step"],
                    info=f"loss {row['loss']:.4f} margin {row['rewards/margins']:.3f}",
                )
                every = cfg.save_state_every_steps
                if cfg.save_state and (epoch_end or (every and row["step"] % every == 0)):
                    _save_full_state(
                        run.out, run.state, run.model, run.optimizer, run.scheduler, run.info
                    )
        if cfg.save_state:
            _save_full_state(run.out, run.state, run.model, run.optimizer, run.scheduler, run.info)
        _save_checkpoint(run.model, run.tokenizer, run.out / "final", run.info)
        return _finish(run.out, run.state, run.info, run.data)


def _finish(out: Path, state: TrainerState, info: DistInfo, data: PreferencePairs) -> DPOResult:
    rows = (
        read_jsonl(out / "metrics.jsonl")
        if info.is_main and (out / "metrics.jsonl").is_file()
        else []
    )
    last = rows[-1] if rows else {}
    if info.is_main:
        summary = {
            "steps": state.step,
            "pairs": len(data),
            "dropped_pairs": data.dropped,
            "final": last,
        }
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        if rows:
            _plot(rows, out / "loss.png")
    return DPOResult(out, out / "final", state.step, last)


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(steps, [r["loss"] for r in rows])
    axes[0].set(xlabel="step", ylabel="loss", title="preference loss")
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins"):
        axes[1].plot(steps, [r[key] for r in rows], label=key)
    axes[1].plot(steps, [r["rewards/accuracies"] for r in rows], "k:", label="rewards/accuracies")
    axes[1].set(xlabel="step", title="implicit rewards")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
