"""``burnish quickstart``: the main job, end to end on the shipped zoo."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.cli.common import TEMPLATE_OPT, console

__all__ = ["kept", "quickstart_command"]


def kept(output: Path = Path("quickstart-out"), **_: object) -> str:
    return f"the quickstart did not finish; run it again with --overwrite ({output})"


def quickstart_command(
    output: Path = typer.Option(Path("quickstart-out"), "--output", "-o", help="Run folder."),
    model: str = typer.Option("base", help="Model to fine-tune (zoo name or directory)."),
    task: str = typer.Option("arith_chain", help="Task to fine-tune on."),
    steps: int = typer.Option(150, min=1, help="Optimizer steps (about a second each on 2 cores)."),
    overwrite: bool = typer.Option(
        False, help="Replace an earlier quickstart in OUTPUT (only its own files)."
    ),
    chat_template: Path | None = TEMPLATE_OPT,
) -> None:
    """Fine-tune a zoo model on one task, evaluate before and after, write a report + PNG."""
    from burnish.quickstart import run_quickstart

    report = run_quickstart(
        output,
        model=model,
        task=task,
        steps=steps,
        overwrite=overwrite,
        chat_template=chat_template,
    )
    console.print(report.read_text())
    console.print(f"report: {report}\nloss curve: {output / 'run' / 'loss.png'}")
