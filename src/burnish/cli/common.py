"""Small printing helpers shared by the command modules."""

from __future__ import annotations

from collections.abc import Sequence

import typer
from rich.console import Console
from rich.table import Table

__all__ = [
    "API_KEY_ENV",
    "PICKLE_OPT",
    "PRM_KIND_OPT",
    "TEMPLATE_OPT",
    "console",
    "print_table",
    "split_names",
]

# Options several commands share, defined once.
PICKLE_OPT = typer.Option(
    False, "--allow-pickle", help="Accept pickle (.bin) checkpoints. Unsafe: runs their code."
)
TEMPLATE_OPT = typer.Option(
    None, "--chat-template", help="Jinja chat template file, for a model without one."
)
PRM_KIND_OPT = typer.Option(
    None,
    "--prm-kind",
    help="two_class | likelihood: the head of a PRM whose card does not say (a model "
    "without a PRM card is refused otherwise).",
)
API_KEY_ENV = "BURNISH_API_KEY"  # the Bearer token of burnish serve and its clients

console = Console()


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = Table(title=title)
    for h in header:
        table.add_column(h)
    for r in rows:
        table.add_row(*r)
    console.print(table)


def split_names(text: str) -> list[str]:
    """'a,b, c' -> ['a', 'b', 'c']."""
    return [t.strip() for t in text.split(",") if t.strip()]
