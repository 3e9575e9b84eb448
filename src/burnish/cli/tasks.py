"""``burnish tasks``: list the synthetic tasks, write their data as chat JSONL."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.cli.common import console, print_table, split_names

app = typer.Typer(help="Synthetic tasks with verifiable answers.", no_args_is_help=True)


@app.command("list")
def list_command() -> None:
    """Show every registered task with an example problem and its options (knobs)."""
    from burnish.tasks import TASKS, get_task, list_tasks

    rows = []
    for name in list_tasks():
        task = get_task(name)
        ex = task.generate(1, "train", seed=0)[0]
        knobs = ", ".join(f"{k}={v!r}" for k, v in task.knobs().items())
        rows.append(
            (name, TASKS[name].description, ex.prompt, ex.answer.replace("\n", " | "), knobs)
        )
    print_table("tasks", ("name", "description", "example prompt", "answer", "options"), rows)


@app.command("generate")
def generate_command(
    names: str = typer.Argument(..., help="Task name, or several separated by commas."),
    out: Path = typer.Option(..., "--out", "-o", help="Output chat JSONL file."),
    n: int = typer.Option(1000, min=1, help="Examples per task."),
    split: str = typer.Option("train", help="'train' or 'test' (disjoint by construction)."),
    seed: int = typer.Option(0, help="Seed; the same seed gives the same file."),
    task_option: list[str] = typer.Option(
        [], "--task-option", help="A task knob, KEY=VALUE (e.g. min_operands=4); repeatable."
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing OUT file."),
) -> None:
    """Write N examples per task as chat rows {"messages": [...], "task", "final"}."""
    from burnish.config import parse_overrides
    from burnish.io import check_output_file, write_jsonl
    from burnish.tasks import mixture

    check_output_file(out, overwrite)
    examples = mixture(split_names(names), n, split, seed, parse_overrides(task_option))
    write_jsonl(out, (e.to_messages() for e in examples))
    console.print(f"wrote {len(examples)} rows to {out}")
