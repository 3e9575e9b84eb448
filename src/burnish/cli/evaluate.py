"""``burnish eval``: task accuracy of a model, as a table and JSON."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.cli.common import PICKLE_OPT, TEMPLATE_OPT, print_table, split_names

__all__ = ["eval_command", "kept"]


def kept(output: Path | None = None, **_: object) -> str:
    return "no results were written" + (f" to {output}" if output else "")


def eval_command(
    model: str = typer.Argument(..., help="Model directory or zoo name."),
    tasks: str = typer.Option(..., "--tasks", "-t", help="Comma-separated task names."),
    n: int = typer.Option(100, "--n", min=1, help="Held-out problems per task."),
    batch_size: int = typer.Option(64, min=1, help="Prompts per generate() call."),
    samples: int = typer.Option(1, min=1, help="Samples per prompt (needs --temperature > 0)."),
    temperature: float = typer.Option(0.0, min=0.0, help="0 = greedy."),
    seed: int = typer.Option(0, help="Seed of the problems and of sampling."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write results as JSON."),
    overwrite: bool = typer.Option(False, help="Replace an existing OUTPUT file."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N, mps or auto."),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 | float16."),
    allow_pickle: bool = PICKLE_OPT,
    chat_template: Path | None = TEMPLATE_OPT,
    kv_cache: str = typer.Option("none", help="KV cache: none | kivi | squat (quantized)."),
    kv_bits: int | None = typer.Option(None, help="Bits per cached key/value code (2 or 4)."),
    kv_group_size: int | None = typer.Option(None, help="G: tokens per key chunk / value group."),
    kv_residual: int | None = typer.Option(None, help="R: newest tokens kept in full precision."),
    squat_rank: int | None = typer.Option(None, help="SQuat: query-subspace rank r per KV head."),
    squat_lambda: float | None = typer.Option(None, help="SQuat: weight of the in-subspace error."),
    squat_block_size: int | None = typer.Option(None, help="SQuat: channels per correction block."),
    progress: bool = typer.Option(True, help="Show a progress bar over the problems."),
) -> None:
    """Greedy (or sampled) generation on each task's test split, exact-match scored.

    Quantized-cache options left unset take the cache's own defaults (see
    burnish.kvcache.KIVIConfig and SQuatConfig)."""
    from burnish.errors import ConfigError
    from burnish.eval.evaluate import evaluate_model, format_table

    if samples > 1 and temperature == 0:
        raise ConfigError("--samples > 1 needs --temperature > 0 (greedy gives one answer)")
    kv_options = {
        "bits": kv_bits,
        "group_size": kv_group_size,
        "residual_length": kv_residual,
        "rank": squat_rank,
        "lam": squat_lambda,
        "block_size": squat_block_size,
    }
    results = evaluate_model(
        model,
        split_names(tasks),
        output,
        dtype=dtype,
        device=device,
        overwrite=overwrite,
        allow_pickle=allow_pickle,
        chat_template=chat_template,
        n_problems=n,
        batch_size=batch_size,
        num_samples=samples,
        temperature=temperature,
        seed=seed,
        kv_cache=kv_cache,
        kv_options={k: v for k, v in kv_options.items() if v is not None},
        progress=progress,
    )
    header = ("task", "problems", "accuracy")
    if samples > 1:
        header += (f"pass@{samples}", f"maj@{samples}")
    print_table(f"eval {model}", header, format_table(results))
