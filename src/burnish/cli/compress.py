"""``burnish hopscotch``: skip redundant attention blocks; ``hopscotch-export``: fold to plain."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.cli.common import console, split_names

__all__ = ["export_command", "hopscotch_command", "kept"]


def kept(output: Path = Path("hopscotch-out"), **_: object) -> str:
    state = Path(output) / "selection_state.json"
    if state.is_file():
        return (
            f"the blocks chosen so far are in {state}; run the same command with --resume to "
            "continue the search"
        )
    return f"no block was chosen yet; nothing of the search was kept in {output}"


def hopscotch_command(
    model: str = typer.Argument(..., help="Model directory or zoo name (the full model)."),
    skip: int = typer.Option(..., "--skip", "-k", min=1, help="Attention blocks to skip."),
    output: Path = typer.Option(..., "--output", "-o", help="Output checkpoint directory."),
    method: str = typer.Option(
        "exact", help="exact | cheap | shortgpt | attn-drop | random (see `burnish.compress`)."
    ),
    scaling: bool = typer.Option(True, help="Fit the scales (--no-scaling: all stay 1)."),
    data: str = typer.Option("tasks", help="Calibration prompts: tasks | pydoc."),
    tasks: str = typer.Option("", "--tasks", "-t", help="Task prompts (default: the card's)."),
    samples: int = typer.Option(256, min=1, help="Prompts the model answers (self-distill)."),
    corpus_blocks: int = typer.Option(0, min=0, help="Extra raw pydoc blocks of calibration."),
    steps: int = typer.Option(20, min=0, help="Scale steps per candidate (exact); 0 = 1 epoch."),
    lr: float = typer.Option(1e-2, min=0.0, help="Search learning rate (Adam)."),
    score_batches: int = typer.Option(2, min=1, help="cheap: batches scored per candidate."),
    fit_steps: int = typer.Option(20, min=0, help="cheap: scale steps after each choice."),
    final_epochs: float = typer.Option(10.0, min=0.0, help="Final scale fit, in epochs."),
    final_lr: float = typer.Option(3e-3, min=0.0, help="Final scale fit learning rate."),
    export: str = typer.Option(
        "hopscotch", help="hopscotch (skips for real) | plain (stock HF, scales folded in)."
    ),
    seed: int = typer.Option(0, help="Seed of the calibration prompts (and of random)."),
    resume: bool = typer.Option(False, help="Continue a killed search in OUTPUT."),
    overwrite: bool = typer.Option(False, help="Replace what burnish wrote in OUTPUT."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N, mps or auto."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Hopscotch: find attention blocks the model does without, skip them, rescale the rest.

    The model answers calibration prompts greedily (self-distillation); each layer gets four
    trainable scalars (x1 = b_att*Attn(Norm(x)) + s_att*x, out = b_mlp*MLP(Norm(x1)) + s_mlp*x1),
    the weights stay frozen. --method exact is the paper's greedy search (for each remaining
    block: skip it, train the scales for --steps, keep the lowest mean loss); cheap scores
    candidates by forward-only loss and fits after each choice; shortgpt, attn-drop and
    random are baselines.

    OUTPUT holds stock weights plus hopscotch.json, which every burnish command (eval, serve,
    scale, sft) loads with the skipped blocks not computed and holding no KV cache.
    --export plain instead folds the scales into o_proj/down_proj: a stock checkpoint with the
    same outputs, which still computes the skipped blocks (as zero)."""
    from burnish.compress import HopscotchConfig, SelectionSettings, run_hopscotch

    settings = SelectionSettings(method, skip, steps, lr, score_batches, fit_steps, seed)
    config = HopscotchConfig(
        data=data, tasks=split_names(tasks), samples=samples, corpus_blocks=corpus_blocks,
        scaling=scaling, final_epochs=final_epochs, final_lr=final_lr, seed=seed,
    )  # fmt: skip
    report = run_hopscotch(
        model, output, settings, config, export, overwrite, resume, device, progress
    )
    loss = report["loss"]
    console.print(
        f"skipped attention of layer(s) {report['skip_attention']}"
        + (f", whole layer(s) {report['skip_mlp']}" if report["skip_mlp"] else "")
        + f"; calibration loss {loss['full']:.4f} -> {loss['final']:.4f}; "
        f"selection {report['selection_seconds']:.1f} s; saved {output} ({export})"
    )


def export_command(
    model: str = typer.Argument(..., help="A hopscotch checkpoint (with hopscotch.json)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output directory."),
    overwrite: bool = typer.Option(False, help="Replace what burnish wrote in OUTPUT."),
) -> None:
    """Fold a hopscotch checkpoint's scales into its weights: a stock HF checkpoint with the
    same outputs (skipped blocks become zero o_proj, computed but adding nothing)."""
    from burnish.compress import export_plain

    console.print(f"saved {export_plain(model, output, overwrite)} (plain)")
