"""Small printing helpers shared by the command modules."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

__all__ = ["console", "print_table", "split_names"]

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
