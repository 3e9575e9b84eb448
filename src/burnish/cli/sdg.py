"""``burnish taxonomy``: read and validate an InstructLab taxonomy, list its leaves."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from burnish.cli.common import console, print_table


def taxonomy_command(
    root: Path = typer.Argument(..., help="The taxonomy's root folder (holding the leaves)."),
    diff: str | None = typer.Option(
        None,
        "--diff",
        help="Only the leaves changed against this git ref (e.g. main), untracked ones too.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the leaves as JSON."),
) -> None:
    """Validate every qna.yaml under ROOT against InstructLab's JSON schemas (the newest
    version in instructlab-schema) and yamllint's errors, as InstructLab's own parser does;
    list the leaves: freeform skills, grounded skills (seed examples with a context) and
    knowledge (with its documents).

    An invalid leaf exits 2 with one line per bad file: FILE:LINE: `FIELD`: problem."""
    from burnish.sdg import read_taxonomy

    leaves = read_taxonomy(root, diff=diff)
    if as_json:
        console.print_json(json.dumps([leaf.to_dict() for leaf in leaves]))
        return
    rows = [(leaf.name, leaf.kind, str(len(leaf.seeds))) for leaf in leaves]
    what = f"changed against {diff}" if diff else "in the tree"
    print_table(f"{len(leaves)} leaves {what}", ["leaf", "kind", "seed examples"], rows)
