"""``burnish eval``: task accuracy and real-text perplexity of a model, as a table and JSON."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer

from burnish.cli.common import PICKLE_OPT, TEMPLATE_OPT, console, print_table, split_names

__all__ = ["eval_command", "kept"]


def kept(output: Path | None = None, **_: object) -> str:
    return "no results were written" + (f" to {output}" if output else "")


def eval_command(
    model: str = typer.Argument(..., help="Model directory, zoo name, .gguf file or known name."),
    tasks: str = typer.Option("", "--tasks", "-t", help="Comma-separated task names."),
    n: int = typer.Option(100, "--n", min=1, help="Held-out problems per task."),
    batch_size: int = typer.Option(64, min=1, help="Prompts per generate() call."),
    samples: int = typer.Option(1, min=1, help="Samples per prompt (needs --temperature > 0)."),
    temperature: float = typer.Option(0.0, min=0.0, help="0 = greedy."),
    seed: int = typer.Option(0, help="Seed of the problems and of sampling."),
    perplexity: bool = typer.Option(
        False, help="Also (or only) measure perplexity on held-out real text (pydoc)."
    ),
    ppl_block_size: int = typer.Option(512, min=2, help="Perplexity: tokens per block."),
    ppl_blocks: int = typer.Option(64, min=1, help="Perplexity: blocks at most."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write results as JSON."),
    overwrite: bool = typer.Option(False, help="Replace an existing OUTPUT file."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N, mps or auto."),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 | float16."),
    allow_pickle: bool = PICKLE_OPT,
    chat_template: Path | None = TEMPLATE_OPT,
    kv_cache: str = typer.Option(
        "none",
        help="KV cache: none | kivi | squat | squat_pre (quantized; squat_pre: keys before RoPE).",
    ),
    kv_bits: int | None = typer.Option(None, help="Bits per cached key/value code (2 or 4)."),
    kv_group_size: int | None = typer.Option(None, help="G: tokens per key chunk / value group."),
    kv_residual: int | None = typer.Option(None, help="R: newest tokens kept in full precision."),
    squat_rank: int | None = typer.Option(None, help="SQuat: query-subspace rank r per KV head."),
    squat_lambda: float | None = typer.Option(None, help="SQuat: weight of the in-subspace error."),
    squat_block_size: int | None = typer.Option(None, help="SQuat: channels per correction block."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Evaluate: exact-match accuracy on task test splits, and/or perplexity on real text.

    Tasks: greedy (or sampled) generation on each task's test split, exact-match scored.
    --perplexity: next-token perplexity on the held-out split of the pydoc corpus.

    Quantized-cache options left unset take the cache's own defaults (see
    burnish.kvcache.KIVIConfig and SQuatConfig)."""
    from burnish.errors import ConfigError
    from burnish.io import atomic_write_text, check_output_file

    names = split_names(tasks)
    if not names and not perplexity:  # the tasks the model was made for, else every task
        from burnish.tasks import list_tasks

        names = _made_for(model) or list_tasks()
    if samples > 1 and temperature == 0:
        raise ConfigError("--samples > 1 needs --temperature > 0 (greedy gives one answer)")
    if output is not None:
        check_output_file(output, overwrite)
    doc: dict = {"model": str(model)}
    _note_skips(model)
    if names:
        doc["results"] = _tasks(model, names, device, dtype, allow_pickle, chat_template, locals())
    if perplexity:
        doc["perplexity"] = _perplexity(
            model, ppl_block_size, ppl_blocks, device, dtype, allow_pickle, progress
        )
    if output is not None:
        import json

        atomic_write_text(output, json.dumps(doc, indent=2) + "\n")


def _made_for(model: str) -> list[str]:
    """The tasks in the card (zoo models) or the hopscotch report of a model directory."""
    import json

    from burnish.models.zoo import resolve_model

    try:
        path = resolve_model(model)
    except Exception:
        return []
    for name, key in (("card.json", ("spec", "tasks")), ("hopscotch_report.json", ("tasks",))):
        if (path / name).is_file():
            doc = json.loads((path / name).read_text())
            for k in key:
                doc = doc.get(k, {}) if isinstance(doc, dict) else {}
            if isinstance(doc, list) and doc:
                return [str(t) for t in doc]
    return []


def _note_skips(model: str) -> None:
    """Say so when the model is a hopscotch checkpoint (its skipped blocks are not run)."""
    from burnish.models.skipping import read_skip_config
    from burnish.models.zoo import resolve_model

    try:
        skips = read_skip_config(resolve_model(model))
    except Exception:
        return
    if skips is not None:
        whole = f", whole layers {skips.skip_mlp}" if skips.skip_mlp else ""
        console.print(f"hopscotch: attention of layers {skips.skip_attention} skipped{whole}")


def _tasks(model, names, device, dtype, allow_pickle, chat_template, opts: dict) -> dict:
    from burnish.eval.evaluate import evaluate_model, format_table

    kv_options = {
        "bits": opts["kv_bits"],
        "group_size": opts["kv_group_size"],
        "residual_length": opts["kv_residual"],
        "rank": opts["squat_rank"],
        "lam": opts["squat_lambda"],
        "block_size": opts["squat_block_size"],
    }
    results = evaluate_model(
        model,
        names,
        None,
        dtype=dtype,
        device=device,
        allow_pickle=allow_pickle,
        chat_template=chat_template,
        n_problems=opts["n"],
        batch_size=opts["batch_size"],
        num_samples=opts["samples"],
        temperature=opts["temperature"],
        seed=opts["seed"],
        kv_cache=opts["kv_cache"],
        kv_options={k: v for k, v in kv_options.items() if v is not None},
        progress=opts["progress"],
    )
    header = ("task", "problems", "accuracy")
    if opts["samples"] > 1:
        header += (f"pass@{opts['samples']}", f"maj@{opts['samples']}")
    print_table(f"eval {model}", header, format_table(results))
    return {k: asdict(v) for k, v in results.items()}


def _perplexity(model, block_size, blocks, device, dtype, allow_pickle, progress) -> dict:
    from burnish.eval.perplexity import model_perplexity

    res = model_perplexity(
        model,
        block_size=block_size,
        max_blocks=blocks,
        device=device,
        dtype=dtype,
        allow_pickle=allow_pickle,
        progress=progress,
    )
    console.print(
        f"perplexity {res.perplexity:.3f} (mean NLL {res.nll:.4f} nats over {res.tokens} "
        f"tokens in {res.blocks} held-out pydoc blocks of <= {block_size})"
    )
    return {**asdict(res), "corpus": "pydoc", "split": "test", "block_size": block_size}
