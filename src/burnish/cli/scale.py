"""``burnish scale``: inference-time scaling search on held-out problems."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.scaling.settings import setting_default as _d

__all__ = ["kept", "scale_command"]


def kept(output: Path = Path("scale.jsonl"), **_: object) -> str:
    from burnish.scaling.run import describe_output

    return describe_output(output)


def scale_command(
    model: str = typer.Argument(..., help="Policy model directory or zoo name."),
    prm: str | None = typer.Option(
        None, "--prm", help="PRM directory or zoo name (arith-prm), or 'logprob' (reward-free)."
    ),
    prm_kind: str | None = typer.Option(
        None,
        "--prm-kind",
        help="two_class | likelihood: the head of a PRM whose card does not say (a model "
        "without a PRM card is refused otherwise).",
    ),
    algo: str = typer.Option("pf", "--algo", help="Search algorithm or alias (pf, pg, pt, ...)."),
    budget: int = typer.Option(16, "--budget", help="particles x sweeps x chains."),
    task: str = typer.Option(
        "arith_chain", "--task", help="Task whose problems (and answer format) to search."
    ),
    task_option: list[str] = typer.Option(
        [], "--task-option", help="A task knob, KEY=VALUE (e.g. min_operands=4); repeatable."
    ),
    problems: Path | None = typer.Option(
        None,
        "--problems",
        help="Your own problems instead of the task's: JSONL of {'prompt', 'answer'} rows "
        "(answer = the final answer after 'Answer:').",
    ),
    n: int = typer.Option(50, "--n", min=1, help="Problems to search (the first N)."),
    output: Path = typer.Option(Path("scale.jsonl"), "--output", "-o", help="Results JSONL."),
    resume: bool = typer.Option(
        False, help="Continue OUTPUT (same configuration; more problems may be added)."
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing OUTPUT."),
    seed: int = typer.Option(0, help="Seed of the search (sampling, resampling)."),
    problem_seed: int = typer.Option(0, help="Seed that draws the task's problems."),
    temperature: float | None = typer.Option(
        None, help=f"Policy sampling temperature (default {_d('temperature')})."
    ),
    tau: float | None = typer.Option(
        None, help=f"Temperature of the resampling softmax (default {_d('tau')})."
    ),
    resampling: str | None = typer.Option(
        None, help=f"multinomial | systematic (default {_d('resampling')})."
    ),
    ess_threshold: float | None = typer.Option(
        None, help="Resample only when ESS < this fraction of N (default: every step)."
    ),
    aggregation: str | None = typer.Option(
        None, help=f"PRM aggregation: model | last | min | prod (default {_d('aggregation')})."
    ),
    selection: str | None = typer.Option(
        None, help=f"Final answer: argmax | vote (default {_d('selection')})."
    ),
    sweeps: int | None = typer.Option(
        None, help=f"Particle Gibbs / tempering sweeps (default {_d('sweeps')})."
    ),
    chains: int | None = typer.Option(
        None, help=f"Parallel tempering chains (default {_d('chains')})."
    ),
    beam_width: int | None = typer.Option(
        None, help=f"Beam search / DVTS children per beam (default {_d('beam_width')})."
    ),
    concurrency: int = typer.Option(16, min=1, help="Problems searched together (batched)."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N, mps or auto."),
    allow_pickle: bool = typer.Option(
        False, "--allow-pickle", help="Accept pickle (.bin) checkpoints. Unsafe: runs their code."
    ),
    chat_template: Path | None = typer.Option(
        None, "--chat-template", help="Jinja chat template file, for a policy without one."
    ),
) -> None:
    """Search each problem with ALGO and BUDGET; write one JSONL row per problem (resumable)
    and OUTPUT.summary.json. A search option not given takes the default shown (from
    burnish.scaling.settings.SearchSettings)."""
    from burnish.config import parse_overrides
    from burnish.scaling.run import run_search

    options = {
        "temperature": temperature,
        "tau": tau,
        "resampling": resampling,
        "ess_threshold": ess_threshold,
        "aggregation": aggregation,
        "selection": selection,
        "sweeps": sweeps,
        "chains": chains,
        "beam_width": beam_width,
    }
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
        options={k: v for k, v in options.items() if v is not None},
        log=None,
        problems=problems,
        task_options=parse_overrides(task_option),
        problem_seed=problem_seed,
        prm_kind=prm_kind,
        resume=resume,
        overwrite=overwrite,
        allow_pickle=allow_pickle,
        chat_template=chat_template,
    )
    tokens = summary["tokens_per_problem"]
    typer.echo(
        f"{summary['algorithm']} budget {budget} on {summary['problems']} problems: accuracy "
        f"{summary['accuracy']:.3f}; tokens/problem encoded {tokens['encoded']:.0f} "
        f"(re-encoding would be {tokens['reencode']:.0f}), prm {tokens['prm']:.0f}; "
        f"results in {output}"
    )
