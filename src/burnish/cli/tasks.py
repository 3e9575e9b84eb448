"""``burnish tasks``: list the synthetic tasks, write their data as chat JSONL."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.cli.common import console, print_table, split_names
from burnish.io import write_jsonl
from burnish.tasks import TASKS, get_task, list_tasks, mixture

app = typer.Typer(help="Synthetic tasks with verifiable answers.", no_args_is_help=True)


@app.command("list")
def list_command() -> None:
    """Show every registered task with an example problem."""
    rows = []
    for name in list_tasks():
        task = get_task(name)
        ex = task.generate(1, "train", seed=0)[0]
        rows.append((name, TASKS[name].description, ex.prompt, ex.answer.replace("\n", " | ")))
    print_table("tasks", ("name", "description", "example prompt", "answer"), rows)


@app.command("generate")
def generate_command(
    names: str = typer.Argument(..., help="Task name, or several separated by commas."),
    out: Path = typer.Option(..., "--out", "-o", help="Output chat JSONL file."),
    n: int = typer.Option(1000, help="Examples per task."),
    split: str = typer.Option("train", help="'train' or 'test' (disjoint by construction)."),
    seed: int = typer.Option(0, help="Seed; the same seed gives the same file."),
) -> None:
    """Write N examples per task as chat rows {"messages": [...], "task", "final"}."""
    examples = mixture(split_names(names), n, split, seed)
    write_jsonl(out, (e.to_messages() for e in examples))
    console.print(f"wrote {len(examples)} rows to {out}")
