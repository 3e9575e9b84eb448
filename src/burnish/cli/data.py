"""``burnish data``: tokenize chat JSONL with a model's template, report what was dropped."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from burnish.cli.common import console

app = typer.Typer(help="Prepare training data.", no_args_is_help=True)


@app.command("prepare")
def prepare_command(
    data: Path = typer.Argument(..., help="Chat JSONL: one {'messages': [...]} per line."),
    model: str = typer.Option(
        ..., "--model", "-m", help="Model directory or zoo name (tokenizer)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output .safetensors file."),
    max_seq_len: int = typer.Option(512, help="Samples with this many tokens or more are dropped."),
) -> None:
    """Tokenize through the model's chat template; labels only on assistant turns (+ EOS)."""
    from burnish.data import prepare_dataset
    from burnish.models import load_tokenizer
    from burnish.models.zoo import resolve_model

    tok = load_tokenizer(resolve_model(model))
    ds = prepare_dataset(data, tok, max_seq_len)
    ds.save(out)
    console.print_json(json.dumps(asdict(ds.report)))
    console.print(f"wrote {len(ds)} samples to {out}")
