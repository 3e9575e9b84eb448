"""``burnish continual``: learn a task sequence; accuracy matrix, average accuracy, BWT."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.cli.common import console, print_table, split_names


def continual_command(
    tasks: str = typer.Option(..., "--tasks", "-t", help="Task sequence, comma-separated."),
    model: str = typer.Option("base", "--model", "-m", help="Starting model (zoo or dir)."),
    output_dir: Path = typer.Option(Path("runs/continual"), "--output-dir", "-o"),
    method: str = typer.Option("osft", help="osft (orthogonal subspaces) or sft (baseline)."),
    samples: int = typer.Option(4000, help="Training samples generated per task."),
    eval_n: int = typer.Option(64, help="Held-out problems per task per evaluation."),
    set_: list[str] = typer.Option([], "--set", "-s", help="OSFT/SFT config key: KEY=VALUE."),
) -> None:
    """Train the tasks in order, re-decomposing after each (the frozen share grows), and
    evaluate every task after every stage. Writes matrix.json and the heatmap matrix.png."""
    from burnish.train.config import parse_overrides
    from burnish.train.continual import run_continual

    names = split_names(tasks)
    res = run_continual(
        model,
        names,
        output_dir,
        method,
        samples,
        eval_n,  # type: ignore[arg-type]
        parse_overrides(set_),
    )
    rows = [
        (f"after {t}", *(f"{a:.2f}" for a in row)) for t, row in zip(names, res.matrix, strict=True)
    ]
    print_table("accuracy matrix", ("", *names), rows)
    console.print(
        f"average accuracy {res.average_accuracy:.3f}   BWT "
        f"{res.backward_transfer:+.3f}   ({output_dir / 'matrix.json'})"
    )
