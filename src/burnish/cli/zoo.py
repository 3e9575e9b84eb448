"""``burnish zoo``: list the shipped tiny models with their cards; rebuild them from seed."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.cli.common import console, print_table, split_names

app = typer.Typer(help="The built-in tiny model zoo.", no_args_is_help=True)


@app.command("list")
def list_command() -> None:
    """Show every zoo model: architecture, size, parent, accuracy per task."""
    from burnish.models.zoo import ZOO_DIR, list_zoo, zoo_card

    rows = []
    for name in list_zoo():
        card = zoo_card(name)
        acc = ", ".join(f"{t} {a:.2f}" for t, a in card["accuracy"].items())
        rows.append(
            (
                name,
                card["architecture"],
                f"{card['parameters']:,}",
                card["spec"]["parent"] or "-",
                acc,
            )
        )
    print_table(
        f"zoo ({ZOO_DIR})", ("name", "architecture", "params", "parent", "greedy accuracy"), rows
    )


@app.command("build")
def build_command(
    names: str = typer.Option("", help="Comma-separated zoo models (default: all)."),
    out: Path | None = typer.Option(None, help="Output folder (default: the package's zoo)."),
    overwrite: bool = typer.Option(
        False, help="Replace existing model folders under OUT (the shipped zoo included)."
    ),
    progress: bool = typer.Option(True, help="Show training and evaluation progress."),
) -> None:
    """Retrain zoo models from seed with burnish's SFT recipe (minutes on 2 CPU cores).

    Existing model folders are refused without --overwrite (all are checked first)."""
    from burnish.models.zoo import ZOO_DIR
    from burnish.train.zoo import build_zoo

    targets = split_names(names) or None
    for card in build_zoo(targets, out or ZOO_DIR, progress=progress, overwrite=overwrite):
        console.print(f"built {card['name']} in {card['build_seconds']} s: {card['accuracy']}")
