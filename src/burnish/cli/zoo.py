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
) -> None:
    """Retrain zoo models from seed with burnish's SFT recipe (minutes on 2 CPU cores)."""
    from burnish.models.zoo import ZOO_DIR
    from burnish.train.zoo import build_zoo

    for card in build_zoo(split_names(names) or None, out or ZOO_DIR):
        console.print(f"built {card['name']} in {card['build_seconds']} s: {card['accuracy']}")
