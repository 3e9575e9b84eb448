"""Checkpoints: HF-format directories for users, full training state for exact resume.

The full state (``OUTPUT/state``) holds the model weights (safetensors), the optimizer and
scheduler states, RNG states and the sampler position, written atomically, so a run killed at
any moment resumes from the last complete state with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from burnish.errors import BurnishError
from burnish.io import atomic_dir, read_jsonl, write_jsonl
from burnish.train.distributed import load_full_state_dicts

__all__ = [
    "STATE_DIR",
    "TrainerState",
    "check_same_run",
    "load_state",
    "save_state",
    "truncate_metrics",
]

STATE_DIR = "state"


@dataclass
class TrainerState:
    """Where the loop is: ``step`` optimizer steps done; next batch is (epoch, batch_in_epoch)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    samples_seen: int = 0
    fingerprint: dict = field(default_factory=dict)  # see burnish.train.sft.run_fingerprint


def save_state(
    out_dir: Path,
    state: TrainerState,
    model_state: dict[str, torch.Tensor],
    optim_state: dict,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> Path:
    """Write OUT/state atomically (main rank only).

    ``model_state`` and ``optim_state`` are full state dicts (see
    :func:`burnish.train.distributed.full_state_dicts`): model weights go to safetensors, the
    optimizer state (tensors and numbers only) to ``optimizer.pt``, read back weights-only.
    """
    with atomic_dir(out_dir / STATE_DIR) as tmp:
        tensors = {k: v.detach().contiguous().cpu() for k, v in model_state.items()}
        save_file(_untie(tensors), str(tmp / "model.safetensors"))
        torch.save(optim_state, tmp / "optimizer.pt")
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state()
        save_file(rng, str(tmp / "rng.safetensors"))
        sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
        doc = {"trainer": asdict(state), "scheduler": sched}
        (tmp / "trainer_state.json").write_text(json.dumps(doc, indent=2) + "\n")
    return out_dir / STATE_DIR


def _untie(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors sharing memory (tied embeddings): store copies.
    seen: set[int] = set()
    out = {}
    for k, v in tensors.items():
        ptr = v.data_ptr()
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def load_state(
    out_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    fingerprint: dict,
) -> TrainerState:
    """Restore everything saved by :func:`save_state` (every rank calls this).

    Refuses a state whose run fingerprint differs from ``fingerprint``, naming the field.
    """
    d = out_dir / STATE_DIR
    if not (d / "trainer_state.json").is_file():
        raise BurnishError(f"{d}: no resumable state here (run without --resume to start fresh)")
    doc: dict[str, Any] = json.loads((d / "trainer_state.json").read_text())
    if "fingerprint" not in doc["trainer"]:
        raise BurnishError(
            f"{d}: the state was saved by an older burnish and cannot be checked; start a new "
            "run (--overwrite, or another output folder)"
        )
    state = TrainerState(**doc["trainer"])
    check_same_run(state.fingerprint, fingerprint, d)
    weights = load_file(str(d / "model.safetensors"))
    optim_state = torch.load(d / "optimizer.pt", weights_only=True)
    load_full_state_dicts(model, weights, optimizer, optim_state)
    scheduler.load_state_dict({**scheduler.state_dict(), **doc["scheduler"]})
    rng = load_file(str(d / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return state


_WHAT = {
    "model": "the starting model's weights differ",
    "data": "the training samples differ (data file content, tokenizer or chat template)",
}


def check_same_run(saved: dict, now: dict, where: Path) -> None:
    """BurnishError naming the first field where a saved run's fingerprint differs."""
    for key in sorted(set(saved) | set(now)):
        if saved.get(key) != now.get(key):
            what = _WHAT.get(key, f"{key} was {saved.get(key)!r}, now {now.get(key)!r}")
            raise BurnishError(
                f"{where}: cannot resume: {what}; resume with the settings of the saved run, "
                "or start again (--overwrite, or another output folder)"
            )


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines logged after ``step`` (they belong to the interrupted tail of a run)."""
    if path.is_file():
        write_jsonl(path, [r for r in read_jsonl(path) if r.get("step", 0) <= step])
