"""``burnish continual``: learn a task sequence; accuracy matrix, average accuracy, BWT."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from burnish.cli.common import TEMPLATE_OPT, console, print_table, split_names

__all__ = ["continual_command", "kept"]


def kept(output_dir: Path = Path("runs/continual"), **_: object) -> str:
    """Which stages of an interrupted continual run are finished."""
    done = sorted(p.parent.name for p in Path(output_dir).glob("stage*-*/eval.json"))
    if not done:
        return (
            f"no stage was finished in {output_dir}; run the same command with --resume to "
            "continue (a stage in progress resumes from its last saved state)"
        )
    return (
        f"{output_dir} holds finished stages {', '.join(done)}; run the same command with "
        "--resume to continue"
    )


def continual_command(
    tasks: str = typer.Option(..., "--tasks", "-t", help="Task sequence, comma-separated."),
    model: str = typer.Option("base", "--model", "-m", help="Starting model (zoo or dir)."),
    output_dir: Path = typer.Option(Path("runs/continual"), "--output-dir", "-o"),
    method: str = typer.Option("osft", help="osft (orthogonal subspaces) or sft (baseline)."),
    samples: int = typer.Option(4000, min=1, help="Training samples generated per task."),
    eval_n: int = typer.Option(64, min=1, help="Held-out problems per task per evaluation."),
    data_seed: int = typer.Option(0, help="Seed of the generated training samples."),
    eval_seed: int = typer.Option(0, help="Seed of the held-out evaluation problems."),
    set_: list[str] = typer.Option([], "--set", "-s", help="OSFT/SFT config key: KEY=VALUE."),
    resume: bool = typer.Option(False, help="Continue a stopped run in OUTPUT_DIR."),
    overwrite: bool = typer.Option(
        False, help="Start over in an OUTPUT_DIR that holds a run (only burnish's files go)."
    ),
    progress: bool = typer.Option(True, help="Show progress bars (training, evaluation)."),
    chat_template: Path | None = TEMPLATE_OPT,
) -> None:
    """Continual learning: train the tasks in order, evaluating every task after every stage.

    Re-decomposes after each stage (the frozen share grows). Writes matrix.json and the
    heatmap matrix.png.

    Each stage trains on SAMPLES fresh examples for one epoch (ceil(SAMPLES / batch) optimizer
    steps, batch = effective_batch_size) unless --set max_steps=N says otherwise."""
    from burnish.config import parse_overrides
    from burnish.train.config import OSFTConfig, recommended_options
    from burnish.train.continual import run_continual

    names = split_names(tasks)
    options = parse_overrides(set_)
    if chat_template is not None:
        options["chat_template"] = str(chat_template)
    used = recommended_options(model, set(options), OSFTConfig)
    if used:
        console.print(
            "using the model card's recommended "
            + ", ".join(f"{k}={v}" for k, v in used.items())
            + f" ({model}); set them with --set to override"
        )
    res = run_continual(
        model,
        names,
        output_dir,
        method,
        samples,
        eval_n,
        {**options, **used},
        data_seed=data_seed,
        eval_seed=eval_seed,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
    )
    rows = [
        (f"after {t}", *(f"{a:.2f}" for a in row)) for t, row in zip(names, res.matrix, strict=True)
    ]
    print_table("accuracy matrix", ("", *names), rows)
    console.print(
        f"average accuracy {res.average_accuracy:.3f}   BWT "
        f"{res.backward_transfer:+.3f}   ({output_dir / 'matrix.json'})"
    )
    console.print("initial accuracy: " + json.dumps(dict(zip(names, res.initial, strict=True))))
