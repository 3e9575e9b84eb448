"""``burnish scale``: inference-time scaling search on a task's held-out problems."""

from __future__ import annotations

from pathlib import Path

import typer


def scale_command(
    model: str = typer.Argument(..., help="Policy model directory or zoo name."),
    prm: str | None = typer.Option(
        None, "--prm", help="PRM directory or zoo name (arith-prm), or 'logprob' (reward-free)."
    ),
    algo: str = typer.Option("pf", "--algo", help="Search algorithm or alias (pf, pg, pt, ...)."),
    budget: int = typer.Option(16, "--budget", help="particles x sweeps x chains."),
    task: str = typer.Option("arith_chain", "--task", help="Task whose problems to search."),
    n: int = typer.Option(50, "--n", help="Held-out problems."),
    output: Path = typer.Option(Path("scale.jsonl"), "--output", "-o", help="Results JSONL."),
    seed: int = typer.Option(0, help="Seed of the problems and of every random choice."),
    temperature: float = typer.Option(0.8, help="Policy sampling temperature."),
    tau: float = typer.Option(1.0, help="Temperature of the resampling softmax."),
    resampling: str = typer.Option("multinomial", help="multinomial | systematic."),
    ess_threshold: float | None = typer.Option(
        None, help="Resample only when ESS < this fraction of N (default: every step)."
    ),
    aggregation: str = typer.Option("model", help="PRM aggregation: model | last | min | prod."),
    selection: str = typer.Option("argmax", help="Final answer: argmax | vote."),
    sweeps: int = typer.Option(2, help="Particle Gibbs / tempering sweeps."),
    chains: int = typer.Option(2, help="Parallel tempering chains."),
    beam_width: int = typer.Option(4, help="Beam search / DVTS children per beam."),
    concurrency: int = typer.Option(16, help="Problems searched together (batched)."),
    device: str = typer.Option("cpu", help="cpu, cuda, ..."),
) -> None:
    """Search each problem with ALGO and BUDGET; write one JSONL row per problem (resumable)
    and OUTPUT.summary.json."""
    from burnish.scaling.run import run_search

    summary = run_search(
        model,
        prm,
        algo,
        budget,
        task,
        n,
        output,
        seed,
        concurrency=concurrency,
        device=device,
        options={
            "temperature": temperature,
            "tau": tau,
            "resampling": resampling,
            "ess_threshold": ess_threshold,
            "aggregation": aggregation,
            "selection": selection,
            "sweeps": sweeps,
            "chains": chains,
            "beam_width": beam_width,
        },
        log=None,
    )
    tokens = summary["tokens_per_problem"]
    typer.echo(
        f"{summary['algorithm']} budget {budget} on {n} {task} problems: accuracy "
        f"{summary['accuracy']:.3f}; tokens/problem encoded {tokens['encoded']:.0f} "
        f"(re-encoding would be {tokens['reencode']:.0f}), prm {tokens['prm']:.0f}; "
        f"results in {output}"
    )
