"""``burnish models``: import real checkpoints (GGUF files, known registry packages)."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.cli.common import console, print_table

app = typer.Typer(
    help="Real checkpoints: import GGUF models as HF directories.", no_args_is_help=True
)


@app.command("import")
def import_command(
    source: str = typer.Argument(
        ..., help="A .gguf file, or a known model: smollm2-135m-instruct, gemma-3-270m."
    ),
    out: Path | None = typer.Option(
        None, "--output", "-o", help="Output folder (default: the cache, reused by name)."
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing OUTPUT folder."),
) -> None:
    """Import a GGUF checkpoint (a file or a known name) as a plain HF directory.

    The directory holds fp32 safetensors, config, tokenizer, chat template, generation config
    and a card with the source's SHA-256 and licence.

    Any command also accepts the .gguf path or the known name directly (imported once)."""
    from burnish.models.gguf import import_gguf

    path = import_gguf(source, out, overwrite=overwrite)
    console.print(f"imported {source} -> {path}")


@app.command("list")
def list_command() -> None:
    """The known real models, their packages and whether they are installed."""
    import importlib.metadata

    from burnish.models.gguf import KNOWN_GGUF

    rows = []
    for name, src in KNOWN_GGUF.items():
        try:
            importlib.metadata.distribution(src.package)
            state = "installed"
        except importlib.metadata.PackageNotFoundError:
            state = f"missing: {src.install}"
        rows.append((name, src.package, src.licence, state))
    print_table("real models", ("name", "package", "licence", "state"), rows)
