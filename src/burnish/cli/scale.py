"""``burnish scale``: inference-time scaling search on held-out problems."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.cli.common import API_KEY_ENV, PICKLE_OPT, PRM_KIND_OPT, TEMPLATE_OPT
from burnish.scaling.settings import setting_default as _d

__all__ = ["kept", "scale_command"]


def kept(output: Path = Path("scale.jsonl"), **_: object) -> str:
    from burnish.scaling.run import describe_output

    return describe_output(output)


_SETTINGS_HELP = {
    "temperature": "Policy sampling temperature",
    "tau": "Temperature of the resampling softmax",
    "resampling": "multinomial | systematic",
    "ess_threshold": "Resample only when ESS < this fraction of N (None: every step)",
    "aggregation": "PRM aggregation: model | last | min | prod",
    "selection": "Final answer: argmax | vote",
    "sweeps": "Particle Gibbs / tempering sweeps",
    "chains": "Parallel tempering chains",
    "beam_width": "Beam search / DVTS children per beam",
}


_ENGINE_OPT = typer.Option(
    None,
    "--engine",
    help="Sample the policy from an OpenAI-compatible server at this URL (burnish serve, "
    "vLLM, ...) through /v1/chat/completions instead of loading it here.",
)
_SERVED_OPT = typer.Option(
    None, "--model", help="With --engine: the model name the server expects (default MODEL)."
)
_KEY_OPT = typer.Option(
    None, envvar=API_KEY_ENV, help=f"With --engine: Bearer token (env {API_KEY_ENV})."
)
_PRM_OPT = typer.Option(
    None, "--prm", help="PRM directory or zoo name (arith-prm), or 'logprob' (reward-free)."
)


def _setting(name: str) -> object:
    """The option of one search setting; unset, it takes SearchSettings' default (shown)."""
    return typer.Option(None, help=f"{_SETTINGS_HELP[name]} (default {_d(name)}).")


def scale_command(
    model: str | None = typer.Argument(
        None, help="Policy model directory or zoo name (or the served name, with --engine)."
    ),
    engine: str | None = _ENGINE_OPT,
    served_model: str | None = _SERVED_OPT,
    api_key: str | None = _KEY_OPT,
    prm: str | None = _PRM_OPT,
    prm_kind: str | None = PRM_KIND_OPT,
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
    temperature: float | None = _setting("temperature"),
    tau: float | None = _setting("tau"),
    resampling: str | None = _setting("resampling"),
    ess_threshold: float | None = _setting("ess_threshold"),
    aggregation: str | None = _setting("aggregation"),
    selection: str | None = _setting("selection"),
    sweeps: int | None = _setting("sweeps"),
    chains: int | None = _setting("chains"),
    beam_width: int | None = _setting("beam_width"),
    concurrency: int = typer.Option(16, min=1, help="Problems searched together (batched)."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N, mps or auto."),
    allow_pickle: bool = PICKLE_OPT,
    chat_template: Path | None = TEMPLATE_OPT,
) -> None:
    """Inference-time scaling: search each problem with ALGO and BUDGET (resumable).

    Writes one JSONL row per problem and OUTPUT.summary.json. A search option not given takes
    the default shown (from burnish.scaling.settings.SearchSettings)."""
    from burnish.config import parse_overrides
    from burnish.scaling.run import run_search

    given = locals()
    options = {name: given[name] for name in _SETTINGS_HELP if given[name] is not None}
    model = _policy_name(model, engine, served_model)
    passed = ("concurrency", "device", "problems", "problem_seed", "prm_kind", "resume")
    passed += ("overwrite", "allow_pickle", "chat_template", "engine", "api_key")
    summary = run_search(
        model,
        prm,
        algo,
        budget,
        task,
        n,
        output,
        seed,
        options=options,
        task_options=parse_overrides(task_option),
        **{name: given[name] for name in passed},
    )
    tokens = summary["tokens_per_problem"]
    typer.echo(
        f"{summary['algorithm']} budget {budget} on {summary['problems']} problems: accuracy "
        f"{summary['accuracy']:.3f}; tokens/problem encoded {tokens['encoded']:.0f} "
        f"(re-encoding would be {tokens['reencode']:.0f}), prm {tokens['prm']:.0f}; "
        f"results in {output}"
    )


def _policy_name(model: str | None, engine: str | None, served_model: str | None) -> str:
    """The policy: MODEL to load here, or with --engine the served name (--model or MODEL)."""
    from burnish.errors import ConfigError

    if engine is None:
        if model is None or served_model is not None:
            raise ConfigError("give the policy MODEL (or --engine URL with --model NAME)")
        return model
    if (served_model or model) is None:
        raise ConfigError("--engine needs the served model's name: --model NAME")
    return served_model or model
