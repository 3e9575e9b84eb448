"""``burnish hopscotch``: calibrate, select blocks to skip, fit the scales, save.

The output directory holds, while the search runs, ``selection_state.json`` (rewritten after
each chosen block, so ``--resume`` continues a killed search), and at the end either a
hopscotch checkpoint (stock weights + ``hopscotch.json``, loaded by every burnish command with
the savings) or, with ``export="plain"``, a stock checkpoint with the scales folded in; and
``hopscotch_report.json`` (chosen blocks, per-round scores, losses, seconds, KV share kept).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from burnish.compress.data import build_calibration
from burnish.compress.fold import fold_scales
from burnish.compress.scales import fit_scales, mean_loss, set_scales
from burnish.compress.select import SelectionSettings, SelectionState, select
from burnish.errors import ConfigError
from burnish.io import atomic_write_text, check_output_dir
from burnish.models import load_model, save_model
from burnish.models.skipping import (
    SKIP_CONFIG_FILE,
    current_skip_config,
    read_skip_config,
    record_selection,
    scaled_layers,
    wrap_scaled,
)
from burnish.models.zoo import resolve_model
from burnish.tasks import list_tasks

__all__ = [
    "EXPORTS",
    "REPORT_FILE",
    "STATE_FILE",
    "HopscotchConfig",
    "default_tasks",
    "export_plain",
    "run_hopscotch",
]

STATE_FILE = "selection_state.json"
REPORT_FILE = "hopscotch_report.json"
EXPORTS = ("hopscotch", "plain")


@dataclass
class HopscotchConfig:
    """Data and final-fit settings (selection settings live in :class:`SelectionSettings`)."""

    data: str = "tasks"  # tasks | pydoc
    tasks: list[str] = field(default_factory=list)  # empty: the zoo card's tasks, else all
    samples: int = 256  # prompts answered by the model for self-distillation
    corpus_blocks: int = 0  # extra raw pydoc blocks (all tokens trained)
    row_tokens: int = 512
    batch_rows: int = 4
    scaling: bool = True  # False: the paper's ablation, every scale left at 1
    final_epochs: float = 10.0  # the paper's final fit: 10 epochs ...
    final_lr: float = 3e-3  # ... at lr 3e-3
    seed: int = 0


def default_tasks(model_dir: Path) -> list[str]:
    """The tasks a zoo model was trained on (its card), else every task."""
    card = model_dir / "card.json"
    if card.is_file():
        tasks = json.loads(card.read_text()).get("spec", {}).get("tasks") or []
        if tasks:
            return list(tasks)
    return list_tasks()


def _load_state(out: Path, settings: SelectionSettings, resume: bool) -> SelectionState | None:
    path = out / STATE_FILE
    if not (resume and path.is_file()):
        return None
    raw = json.loads(path.read_text())
    if raw.get("settings") != asdict(settings):
        raise ConfigError(
            f"{path}: this search was run with other settings ({raw.get('settings')}); run it "
            "with those, or --overwrite to start over"
        )
    return SelectionState(**raw)


def run_hopscotch(
    model: str | Path,
    out: str | Path,
    settings: SelectionSettings,
    config: HopscotchConfig | None = None,
    export: str = "hopscotch",
    overwrite: bool = False,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = False,
) -> dict:
    """Select ``settings.k`` blocks of ``model`` to skip and save the result to ``out``;
    returns the report (also written to ``out/hopscotch_report.json``)."""
    config = config or HopscotchConfig()
    if export not in EXPORTS:
        raise ConfigError(f"unknown --export {export!r}; choose one of {EXPORTS}")
    src = resolve_model(model)
    if read_skip_config(src) is not None:
        raise ConfigError(
            f"{src} already skips blocks ({SKIP_CONFIG_FILE}); start from the full model, or "
            "export it with `burnish hopscotch-export`"
        )
    out = check_output_dir(out, overwrite, resume)
    t0 = time.perf_counter()
    m, tok = load_model(src, device=device)
    tasks = config.tasks or default_tasks(src)
    calib = build_calibration(
        m, tok, config.data, tasks, config.samples, config.corpus_blocks,
        row_tokens=config.row_tokens, batch_rows=config.batch_rows, seed=config.seed,
        progress=progress,
    )  # fmt: skip
    wrap_scaled(m)
    full_loss = mean_loss(m, calib)
    state = _load_state(out, settings, resume)
    out.mkdir(parents=True, exist_ok=True)
    save = lambda st: atomic_write_text(out / STATE_FILE, json.dumps(st.to_dict(), indent=2))  # noqa: E731
    state = select(m, calib, settings, state, save, progress)
    searched = mean_loss(m, calib)
    steps = round(config.final_epochs * len(calib.batches)) if config.scaling else 0
    final = fit_scales(m, calib, steps, config.final_lr)
    if not config.scaling:
        set_scales(m, torch.ones(len(scaled_layers(m)), 4))
    report = {
        "model": str(src),
        "settings": asdict(settings),
        "config": asdict(config),
        "tasks": tasks if config.data == "tasks" else [],
        "calibration": {
            "sequences": calib.sequences,
            "tokens": calib.tokens,
            "batches": len(calib.batches),
        },
        "skip_attention": current_skip_config(m).skip_attention,
        "skip_mlp": current_skip_config(m).skip_mlp,
        "rounds": state.rounds,
        "loss": {"full": full_loss, "after_search": searched, "final": mean_loss(m, calib)},
        "final_fit_steps": len(final),
        "selection_seconds": state.seconds,
        "seconds": round(time.perf_counter() - t0, 3),
        "export": export,
    }
    record_selection(m, {"method": settings.method, "k": settings.k, "scaling": config.scaling})
    if export == "plain":
        fold_scales(m)
    save_model(m, tok, out, extra_files={REPORT_FILE: json.dumps(report, indent=2) + "\n"})
    return report


def export_plain(model: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Fold a hopscotch checkpoint into a stock HF checkpoint at ``out``."""
    src = resolve_model(model)
    if read_skip_config(src) is None:
        raise ConfigError(
            f"{src}: no {SKIP_CONFIG_FILE}; nothing to fold (not a hopscotch checkpoint)"
        )
    out = check_output_dir(out, overwrite)
    m, tok = load_model(src)
    fold_scales(m)
    return save_model(m, tok, out)
