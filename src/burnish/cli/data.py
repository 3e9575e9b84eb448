"""``burnish data``: tokenize chat JSONL with a model's template, report what was dropped."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from burnish.cli.common import TEMPLATE_OPT, console

app = typer.Typer(help="Prepare training data.", no_args_is_help=True)


@app.command("prepare")
def prepare_command(
    data: Path = typer.Argument(..., help="Chat JSONL: one {'messages': [...]} per line."),
    model: str = typer.Option(
        ..., "--model", "-m", help="Model directory or zoo name (tokenizer)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output .safetensors file."),
    max_seq_len: int = typer.Option(
        512, min=2, help="Samples with this many tokens or more are dropped."
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing OUT file."),
    chat_template: Path | None = TEMPLATE_OPT,
) -> None:
    """Tokenize through the model's chat template; labels only on assistant turns (+ EOS).

    The output is what `burnish sft --data OUT` trains on (with the same model's tokenizer
    and chat template; checked)."""
    from burnish.data import prepare_dataset
    from burnish.data.dataset import describe_report
    from burnish.errors import ConfigError
    from burnish.io import check_output_file
    from burnish.models import load_tokenizer
    from burnish.models.zoo import resolve_model

    if out.suffix != ".safetensors":
        raise ConfigError(f"{out}: the output is a safetensors file; name it *.safetensors")
    check_output_file(out, overwrite)
    tok = load_tokenizer(resolve_model(model), chat_template=chat_template)
    ds = prepare_dataset(data, tok, max_seq_len, use_cache=False)
    ds.save(out)
    console.print_json(json.dumps(asdict(ds.report)))
    console.print(describe_report(ds.report))
    console.print(f"wrote {len(ds)} samples to {out}")
