"""``burnish sft`` and ``burnish osft``: training recipes from YAML plus command-line overrides."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from pydantic import BaseModel

from burnish.cli.common import console
from burnish.train.config import SFTConfig
from burnish.train.osft import OSFTConfig


def _fields_help(cls: type[BaseModel]) -> str:
    lines = ["Config keys (YAML or --set KEY=VALUE):"]
    for name, f in cls.model_fields.items():
        default = "required" if f.is_required() else f"default {f.default!r}"
        lines.append(f"  {name}: {f.description} ({default})")
    return "\n\n".join(lines)


def _train(
    cls: type[SFTConfig],
    config: Path | None,
    model: str | None,
    data: str | None,
    output_dir: str | None,
    set_: list[str],
    resume: bool,
) -> None:
    from burnish.train.config import load_config, parse_overrides
    from burnish.train.distributed import shutdown_distributed
    from burnish.train.osft import OSFT
    from burnish.train.sft import run_sft

    overrides = parse_overrides(set_)
    overrides.update({"model": model, "data": data, "output_dir": output_dir})
    cfg = load_config(cls, config, overrides)
    method = OSFT(cfg) if isinstance(cfg, OSFTConfig) else None
    result = run_sft(cfg, resume=resume, method=method)
    shutdown_distributed()  # under torchrun: leave the process group before exiting
    if int(os.environ.get("RANK", "0")) != 0:
        return  # one report, from the main rank
    console.print(
        f"final model: {result.final_model}  (steps {result.steps}, loss {result.final_loss:.4f})"
    )
    if method is not None:
        console.print(f"frozen share of targeted ranks: {method.frozen_share():.3f}")
    if result.early_signals:
        console.print("early signals: " + json.dumps(result.early_signals))


CONFIG_ARG = typer.Argument(None, help="YAML config (see examples/).")
MODEL_OPT = typer.Option(None, "--model", "-m", help="Model directory or zoo name.")
DATA_OPT = typer.Option(None, "--data", "-d", help="Chat JSONL training data.")
OUT_OPT = typer.Option(None, "--output-dir", "-o", help="Run directory.")
SET_OPT = typer.Option([], "--set", "-s", help="Override a config key: KEY=VALUE.")
RESUME_OPT = typer.Option(False, help="Continue from OUTPUT_DIR/state after a stop.")


def sft_command(
    config: Path | None = CONFIG_ARG,
    model: str | None = MODEL_OPT,
    data: str | None = DATA_OPT,
    output_dir: str | None = OUT_OPT,
    set_: list[str] = SET_OPT,
    resume: bool = RESUME_OPT,
) -> None:
    """Fine-tune with packed, padding-free batches (AdamW, per-token-mean loss).

    Writes metrics.jsonl, summary.json (with early signals), loss.png and HF checkpoints
    under the output directory; final weights go to OUTPUT_DIR/final.
    """
    _train(SFTConfig, config, model, data, output_dir, set_, resume)


def osft_command(
    config: Path | None = CONFIG_ARG,
    model: str | None = MODEL_OPT,
    data: str | None = DATA_OPT,
    output_dir: str | None = OUT_OPT,
    set_: list[str] = SET_OPT,
    resume: bool = RESUME_OPT,
) -> None:
    """Full fine-tuning confined to the complement of each weight's frozen top singular subspace.

    Same recipe, data, packing, checkpoints, resume and torchrun support as `burnish sft`;
    the output is a plain dense HF checkpoint.
    """
    _train(OSFTConfig, config, model, data, output_dir, set_, resume)


sft_command.__doc__ = (sft_command.__doc__ or "") + "\n\n" + _fields_help(SFTConfig)
osft_command.__doc__ = (osft_command.__doc__ or "") + "\n\n" + _fields_help(OSFTConfig)
