"""LAB's phased training (``burnish phases``): multi-phase or stacked, on ``burnish mix``'s sets.

- ``multi``: phase ``knowledge`` on ``phase07.jsonl`` (smaller batch, the full learning rate),
  then phase ``skills`` on ``phase10.jsonl`` (larger batch, a lower rate) from the knowledge
  phase's best checkpoint.
- ``stacked``: one phase on both files together, with the skills phase's settings (the SFT
  study found it as good; burnish measures both).

Each phase is a plain SFT run (:func:`burnish.train.sft.run_sft`) in ``RUN/<phase>/``
saving a checkpoint per epoch; every epoch's checkpoint is scored by the evaluation (mean
accuracy on zoo tasks, or the loss on rows held out of the phase's data) and the best one
starts the next phase. ``RUN/phases.json`` records each phase's scores and choice, so
``resume`` skips finished phases and continues an interrupted one from its saved state;
``RUN/final`` is a copy of the last phase's best checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from burnish.config import load_config
from burnish.errors import ConfigError, DataError
from burnish.io import atomic_dir, atomic_write_text, check_output_dir, read_jsonl, write_jsonl
from burnish.train.config import PhaseEval, SFTConfig, recommended_options
from burnish.train.sft import run_sft

__all__ = ["MODES", "PHASE_SETTINGS", "PhaseEval", "PhaseSettings", "run_phases"]


@dataclass(frozen=True)
class PhaseSettings:
    """A phase's defaults: epochs, batch, and its learning rate as a share of the run's."""

    epochs: int
    effective_batch_size: int
    lr_factor: float


# LAB: knowledge with a smaller batch and a higher rate, skills with a large batch and a lower
# rate (the paper's scale is 128 vs 3840 samples; these suit the zoo's small sets).
PHASE_SETTINGS = {
    "knowledge": PhaseSettings(epochs=3, effective_batch_size=8, lr_factor=1.0),
    "skills": PhaseSettings(epochs=3, effective_batch_size=32, lr_factor=0.5),
}
MODES = {
    "multi": [("knowledge", ("phase07",)), ("skills", ("phase10",))],
    "stacked": [("stacked", ("phase07", "phase10"))],
}
LEDGER = "phases.json"


def _held_out(row: dict, i: int, share: float) -> bool:
    key = str(row.get("id", i)).encode()
    return int(hashlib.sha256(key).hexdigest()[:8], 16) / 2**32 < share


def _phase_data(
    mix_dir: Path, files: tuple[str, ...], work: Path, ev: PhaseEval
) -> tuple[Path, list[dict]]:
    """The phase's training file in ``work`` and its held-out rows (loss evaluation)."""
    rows = []
    for name in files:
        path = mix_dir / f"{name}.jsonl"
        if not path.is_file():
            raise DataError(f"{path}: missing; make it with `burnish mix ... -o {mix_dir}`")
        rows += read_jsonl(path)
    if not rows:
        raise DataError(f"{mix_dir}: {' and '.join(files)} hold no rows")
    held = [] if ev.tasks else [r for i, r in enumerate(rows) if _held_out(r, i, ev.holdout)]
    train = [r for i, r in enumerate(rows) if ev.tasks or not _held_out(r, i, ev.holdout)]
    if not train or (not ev.tasks and not held):
        raise DataError(
            f"{mix_dir}: {len(rows)} rows are too few to hold {ev.holdout:.0%} out for the "
            "loss evaluation; pass evaluation tasks or more data"
        )
    return write_jsonl(work / "train.jsonl", train), held


def _score(checkpoint: Path, ev: PhaseEval, held: list[dict], max_seq_len: int) -> float:
    from burnish.eval.evaluate import evaluate
    from burnish.eval.perplexity import chat_loss
    from burnish.models.io import load_model

    model, tok = load_model(checkpoint)
    model.eval()
    if ev.tasks:
        results = evaluate(model, tok, list(ev.tasks), ev.problems)
        return round(sum(r.accuracy for r in results.values()) / len(results), 4)
    return round(-chat_loss(model, tok, held, max_seq_len), 4)


def _save_ledger(out: Path, doc: dict) -> None:
    atomic_write_text(out / LEDGER, json.dumps(doc, indent=2) + "\n")


def _phase_config(
    name: str, start: str, train: Path, out: Path, lr: float, options: dict[str, Any]
) -> SFTConfig:
    base = PHASE_SETTINGS["skills" if name == "stacked" else name]
    values = {
        "epochs": base.epochs,
        "effective_batch_size": base.effective_batch_size,
        **options,
        "model": start,
        "data": str(train),
        "output_dir": str(out),
        "save_epoch_end": True,
        "save_every_samples": None,
    }
    values["lr"] = lr * base.lr_factor
    return load_config(SFTConfig, None, values)


def run_phases(
    model: str,
    mix_dir: Path,
    out: Path,
    mode: str = "multi",
    ev: PhaseEval | None = None,
    options: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log=print,
) -> dict:
    """Train ``model`` through the phases of ``mode`` (see the module doc); ``options`` are
    SFT config keys for every phase (``lr`` is the knowledge phase's, scaled per phase).
    Returns the ledger."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose from {sorted(MODES)}")
    ev, options = ev or PhaseEval(), dict(options or {})
    check_output_dir(out, overwrite=overwrite, resume=resume, what="phases run folder")
    settings = {"model": model, "mix": str(mix_dir), "mode": mode, "eval": asdict(ev),
                "options": options}  # fmt: skip
    settings = json.loads(json.dumps(settings))  # as the ledger holds it (lists, not tuples)
    if resume and (out / LEDGER).is_file():
        ledger = json.loads((out / LEDGER).read_text())
        if ledger["settings"] != settings:
            raise ConfigError(
                f"{out / LEDGER}: this run was started with other settings "
                f"({ledger['settings']}); resume it with those, or use --overwrite"
            )
    else:
        ledger = {"settings": settings, "metric": ev.metric(), "phases": {}}
    out.mkdir(parents=True, exist_ok=True)
    card = recommended_options(model, set(options), SFTConfig)
    lr = options.get("lr", card.get("lr", SFTConfig.model_fields["lr"].default))
    start = model
    for name, files in MODES[mode]:
        done = ledger["phases"].get(name, {})
        if done.get("best"):
            log(f"phase {name}: done before (best {done['best']}, score {done['score']})")
            start = done["best"]
            continue
        start = _run_phase(name, files, start, mix_dir, out, ev, lr, options, ledger, resume,
                           progress, log)  # fmt: skip
    final = out / "final"
    with atomic_dir(final) as tmp:
        shutil.copytree(start, tmp, dirs_exist_ok=True)
    ledger["final"] = str(final)
    _save_ledger(out, ledger)
    return ledger


def _run_phase(
    name: str,
    files: tuple[str, ...],
    start: str,
    mix_dir: Path,
    out: Path,
    ev: PhaseEval,
    lr: float,
    options: dict[str, Any],
    ledger: dict,
    resume: bool,
    progress: bool,
    log,
) -> str:
    """Train one phase, score its epoch checkpoints, record and return the best."""
    work = out / name
    work.mkdir(parents=True, exist_ok=True)
    train, held = _phase_data(mix_dir, files, work, ev)
    cfg = _phase_config(name, start, train, work / "run", lr, options)
    again = resume and (work / "run" / "state").is_dir()
    log(f"phase {name}: {cfg.epochs} epochs x batch {cfg.effective_batch_size}, lr {cfg.lr:g}, "
        f"from {start}{' (resumed)' if again else ''}")  # fmt: skip
    run_sft(cfg, resume=again, progress=progress, overwrite=not again)  # RUN/<phase> is ours
    record = ledger["phases"].setdefault(name, {"start": start, "lr": cfg.lr, "scores": {}})
    for ckpt in sorted((work / "run" / "checkpoints").glob("epoch_*"), key=_epoch):
        if ckpt.name not in record["scores"]:
            record["scores"][ckpt.name] = _score(ckpt, ev, held, cfg.max_seq_len)
            _save_ledger(out, ledger)
            log(f"phase {name}: {ckpt.name} scores {record['scores'][ckpt.name]} ({ev.metric()})")
    if not record["scores"]:
        raise DataError(f"{work / 'run'}: the phase saved no epoch checkpoint")
    best = max(record["scores"], key=lambda k: (record["scores"][k], -_epoch(Path(k))))
    record |= {"best": str(work / "run" / "checkpoints" / best), "score": record["scores"][best]}
    _save_ledger(out, ledger)
    return record["best"]


def _epoch(path: Path) -> int:
    return int(path.name.split("_")[-1])
