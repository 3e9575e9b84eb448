"""Task accuracy of a model: batched generation on held-out problems, exact-match scoring."""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from burnish.errors import ConfigError
from burnish.eval.generate import generate_chat
from burnish.io import atomic_write_text, check_output_file
from burnish.models.io import load_model
from burnish.models.zoo import resolve_model
from burnish.progress import Advance, progress_bar
from burnish.tasks import get_task

__all__ = ["TaskResult", "evaluate", "evaluate_model", "format_table"]


@dataclass
class TaskResult:
    """Accuracy on one task. With n samples per prompt: mean accuracy, any-correct, majority."""

    task: str
    n_problems: int
    accuracy: float  # greedy accuracy, or mean per-sample accuracy when sampling
    samples_per_problem: int = 1
    pass_at_n: float | None = None
    majority_at_n: float | None = None
    examples: list[dict] = field(default_factory=list)


def _majority(finals: list[str | None]) -> str | None:
    votes = [f for f in finals if f is not None]
    return max(set(votes), key=votes.count) if votes else None


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: list[str],
    n_problems: int = 100,
    batch_size: int = 64,
    num_samples: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    keep_examples: int = 3,
    progress: bool = False,
    kv_cache: str = "none",
    kv_options: dict | None = None,
) -> dict[str, TaskResult]:
    """Evaluate ``model`` on the test split of each task (seeded, so runs are comparable).

    ``kv_cache`` ("none" or a name in :data:`burnish.kvcache.KV_CACHES`) decodes with a fresh
    quantized KV cache per batch, built by :func:`burnish.kvcache.build_kv_cache` with
    ``kv_options`` (bits, group_size, residual_length, rank, lam, block_size); the model's
    attention is switched to ``burnish_kv`` for the run and restored afterwards. ``progress``
    shows a bar over the problems of all tasks.
    """
    for name, value in (("n_problems", n_problems), ("batch_size", batch_size)):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    if num_samples < 1:
        raise ConfigError(f"num_samples must be at least 1, got {num_samples}")
    quantized = kv_cache not in (None, "none")
    if quantized:
        from burnish.kvcache import build_kv_cache, kv_attention

        # validate the options up front (and that the model suits the cache, e.g. has RoPE)
        build_kv_cache(kv_cache, model, **(kv_options or {})).restore_attention()
    total = n_problems * len(tasks)
    with (
        kv_attention(model) if quantized else nullcontext(),
        progress_bar(total, "eval", progress) as advance,
    ):
        return _evaluate(
            model,
            tokenizer,
            tasks,
            n_problems,
            batch_size,
            num_samples,
            temperature,
            seed,
            keep_examples,
            kv_cache if quantized else None,
            kv_options or {},
            advance,
        )


def _evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: list[str],
    n_problems: int,
    batch_size: int,
    num_samples: int,
    temperature: float,
    seed: int,
    keep_examples: int,
    kv_cache: str | None,
    kv_options: dict,
    advance: Advance,
) -> dict[str, TaskResult]:
    results = {}
    for name in tasks:
        task = get_task(name)
        problems = task.generate(n_problems, split="test", seed=seed)
        correct: list[list[bool]] = []
        finals: list[list[str | None]] = []
        shown: list[dict] = []
        for i in range(0, len(problems), batch_size):
            chunk = problems[i : i + batch_size]
            extra = {}
            if kv_cache is not None:
                from burnish.kvcache import build_kv_cache

                extra["cache"] = build_kv_cache(kv_cache, model, **kv_options)
            outs = generate_chat(
                model,
                tokenizer,
                [p.prompt for p in chunk],
                task.max_new_tokens,
                num_samples,
                temperature,
                seed=seed + i,
                **extra,
            )
            for p, completions in zip(chunk, outs, strict=True):
                correct.append([task.score(p.prompt, c) for c in completions])
                finals.append([task.extract_answer(c) for c in completions])
                if len(shown) < keep_examples:
                    shown.append({"prompt": p.prompt, "gold": p.final, "output": completions[0]})
            done = sum(sum(c) for c in correct) / (len(correct) * num_samples)
            advance(len(chunk), info=f"{name} accuracy {done:.3f}")
        acc = sum(sum(c) for c in correct) / (len(correct) * num_samples)
        res = TaskResult(name, len(problems), acc, num_samples, examples=shown)
        if num_samples > 1:
            res.pass_at_n = sum(any(c) for c in correct) / len(correct)
            res.majority_at_n = sum(
                _majority(f) == p.final for f, p in zip(finals, problems, strict=True)
            ) / len(problems)
        results[name] = res
    return results


def evaluate_model(
    model: str | Path,
    tasks: list[str],
    output: str | Path | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    overwrite: bool = False,
    allow_pickle: bool = False,
    chat_template: str | Path | None = None,
    **options: object,
) -> dict[str, TaskResult]:
    """Python API behind ``burnish eval``: load, evaluate, optionally write JSON.

    An existing ``output`` is refused unless ``overwrite``; ``options`` go to :func:`evaluate`.
    """
    for name in tasks:
        get_task(name)  # fail on an unknown task before loading anything
    if output is not None:
        check_output_file(output, overwrite)
    m, tok = load_model(
        resolve_model(model),
        dtype=dtype,
        device=device,
        allow_pickle=allow_pickle,
        chat_template=chat_template,
    )
    results = evaluate(m, tok, tasks, **options)  # type: ignore[arg-type]
    if output is not None:
        doc = {"model": str(model), "results": {k: asdict(v) for k, v in results.items()}}
        atomic_write_text(output, json.dumps(doc, indent=2) + "\n")
    return results


def format_table(results: dict[str, TaskResult]) -> list[tuple[str, ...]]:
    """Rows (task, problems, accuracy[, pass@n, maj@n]) for printing."""
    rows = []
    for r in results.values():
        row = (r.task, str(r.n_problems), f"{r.accuracy:.3f}")
        if r.pass_at_n is not None:
            row += (f"{r.pass_at_n:.3f}", f"{r.majority_at_n:.3f}")
        rows.append(row)
    return rows
