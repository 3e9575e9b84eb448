"""``burnish eval``: task accuracy of a model, as a table and JSON."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.cli.common import print_table, split_names


def eval_command(
    model: str = typer.Argument(..., help="Model directory or zoo name."),
    tasks: str = typer.Option(..., "--tasks", "-t", help="Comma-separated task names."),
    n: int = typer.Option(100, "--n", help="Held-out problems per task."),
    batch_size: int = typer.Option(64, help="Prompts per generate() call."),
    samples: int = typer.Option(1, help="Samples per prompt (needs --temperature > 0)."),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    seed: int = typer.Option(0, help="Seed of the problems and of sampling."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write results as JSON."),
    device: str = typer.Option("cpu", help="cpu, cuda, ..."),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 | float16."),
    kv_cache: str = typer.Option("none", help="KV cache: none | kivi | squat (quantized)."),
    kv_bits: int = typer.Option(2, help="Bits per cached key/value code (2 or 4)."),
    kv_group_size: int = typer.Option(32, help="G: tokens per key chunk / value group."),
    kv_residual: int = typer.Option(32, help="R: newest tokens kept in full precision."),
    squat_rank: int = typer.Option(8, help="SQuat: query-subspace rank r per KV head."),
    squat_lambda: float = typer.Option(10.0, help="SQuat: weight of the in-subspace error."),
    squat_block_size: int = typer.Option(8, help="SQuat: channels per correction block."),
) -> None:
    """Greedy (or sampled) generation on each task's test split, exact-match scored."""
    from burnish.errors import ConfigError
    from burnish.eval.evaluate import evaluate_model, format_table

    if samples > 1 and temperature == 0:
        raise ConfigError("--samples > 1 needs --temperature > 0 (greedy gives one answer)")
    results = evaluate_model(
        model,
        split_names(tasks),
        output,
        dtype=dtype,
        device=device,
        n_problems=n,
        batch_size=batch_size,
        num_samples=samples,
        temperature=temperature,
        seed=seed,
        kv_cache=kv_cache,
        kv_options=_kv_options(
            kv_cache,
            kv_bits,
            kv_group_size,
            kv_residual,
            squat_rank,
            squat_lambda,
            squat_block_size,
        ),
    )
    header = ("task", "problems", "accuracy")
    if samples > 1:
        header += (f"pass@{samples}", f"maj@{samples}")
    print_table(f"eval {model}", header, format_table(results))


def _kv_options(
    kind: str, bits: int, group: int, residual: int, rank: int, lam: float, block: int
) -> dict:
    """Options of the quantized KV cache for ``burnish eval`` (SQuat's only for squat)."""
    opts: dict = {"bits": bits, "group_size": group, "residual_length": residual}
    if kind == "squat":
        opts.update(rank=rank, lam=lam, block_size=block)
    return opts
