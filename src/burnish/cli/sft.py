"""``burnish sft``: the packed SFT recipe from a YAML config plus command-line overrides."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from burnish.cli.common import console
from burnish.train.config import SFTConfig


def _fields_help() -> str:
    lines = ["Config keys (YAML or --set KEY=VALUE):"]
    for name, f in SFTConfig.model_fields.items():
        default = "required" if f.is_required() else f"default {f.default!r}"
        lines.append(f"  {name}: {f.description} ({default})")
    return "\n\n".join(lines)


def sft_command(
    config: Path | None = typer.Argument(None, help="YAML config (see examples/sft.yaml)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model directory or zoo name."),
    data: str | None = typer.Option(None, "--data", "-d", help="Chat JSONL training data."),
    output_dir: str | None = typer.Option(None, "--output-dir", "-o", help="Run directory."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a config key: KEY=VALUE."),
    resume: bool = typer.Option(False, help="Continue from OUTPUT_DIR/state after a stop."),
) -> None:
    """Fine-tune with packed, padding-free batches (AdamW, per-token-mean loss).

    Writes metrics.jsonl, summary.json (with early signals), loss.png and HF checkpoints
    under the output directory; final weights go to OUTPUT_DIR/final.
    """
    from burnish.train.config import load_config, parse_overrides
    from burnish.train.sft import run_sft

    overrides = parse_overrides(set_)
    overrides.update({"model": model, "data": data, "output_dir": output_dir})
    cfg = load_config(SFTConfig, config, overrides)
    result = run_sft(cfg, resume=resume)
    console.print(
        f"final model: {result.final_model}  (steps {result.steps}, loss {result.final_loss:.4f})"
    )
    if result.early_signals:
        console.print("early signals: " + json.dumps(result.early_signals))


sft_command.__doc__ = (sft_command.__doc__ or "") + "\n\n" + _fields_help()
