"""Run a search over a task's held-out problems: JSONL per problem (resumable) + a summary.

Every finished problem is appended to the output JSONL at once (flushed), so a killed run loses
at most the problems in flight; rerunning with the same output skips the problems already
there (a torn last line is dropped) and refuses a file written with different settings.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from burnish.errors import ConfigError
from burnish.io import append_jsonl, atomic_write_text
from burnish.scaling.algorithms import SearchOptions, get_algorithm
from burnish.scaling.particles import Problem

__all__ = ["load_done", "run_search", "search_problems", "summarize"]

_KEYS = ("algorithm", "budget", "task", "seed")


def load_done(path: Path, settings: dict[str, Any]) -> dict[int, dict]:
    """Rows already in ``path`` by problem index; drops a torn last line; ConfigError if the
    file was written with other settings."""
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    rows, good = {}, []
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # killed mid-write: drop it and rewrite the rest
                atomic_write_text(path, "".join(good))
                break
            raise ConfigError(
                f"{path}:{i + 1}: not valid JSON; not a `burnish scale` output"
            ) from None
        if not line.endswith("\n"):
            atomic_write_text(path, "".join(good))
            break
        other = {k: row.get(k) for k in _KEYS}
        if other != {k: settings[k] for k in _KEYS}:
            raise ConfigError(
                f"{path} holds results of another run ({other}); this run is "
                f"{ {k: settings[k] for k in _KEYS} }: use another output path"
            )
        rows[row["index"]] = row
        good.append(line)
    return rows


async def search_problems(
    prompts: list[str],
    algorithm: str,
    budget: int,
    opts: SearchOptions,
    seed: int = 0,
    concurrency: int = 16,
    on_done: Callable[[int, dict], None] | None = None,
    skip: set[int] | frozenset[int] = frozenset(),
) -> dict[int, dict]:
    """Search every prompt (``concurrency`` at once, batched together by the engine).

    Returns (and passes to ``on_done`` as each finishes) a row per problem index: the result,
    token usage and latency.
    """
    algo = get_algorithm(algorithm)
    if algo.needs_reward:
        opts.need_reward(algo.name)
    sem = asyncio.Semaphore(max(1, concurrency))
    out: dict[int, dict] = {}

    async def one(i: int, prompt: str) -> None:
        async with sem:
            problem = Problem(prompt, seed=seed)
            t0 = time.perf_counter()
            result = await algo.run(problem, budget, opts)
            row = {
                "index": i,
                "prompt": prompt,
                **asdict(result),
                "tokens": problem.usage.as_dict(),
                "latency_s": round(time.perf_counter() - t0, 4),
            }
            out[i] = row
            if on_done is not None:
                on_done(i, row)

    await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts) if i not in skip))
    return out


def summarize(rows: list[dict], settings: dict[str, Any]) -> dict[str, Any]:
    """Accuracy and mean tokens/latency per problem."""
    n = len(rows)

    def mean(key: str) -> float:
        return round(sum(r["tokens"][key] for r in rows) / max(1, n), 2)

    return {
        **settings,
        "problems": n,
        "accuracy": round(sum(bool(r.get("correct")) for r in rows) / max(1, n), 4),
        "tokens_per_problem": {
            k: mean(k) for k in ("prefill", "generated", "encoded", "reencode", "prm", "padded")
        },
        "latency_s_mean": round(sum(r["latency_s"] for r in rows) / max(1, n), 4),
    }


def run_search(
    model: str,
    prm: str | None,
    algorithm: str,
    budget: int,
    task: str = "arith_chain",
    n: int = 50,
    output: str | Path = "scale.jsonl",
    seed: int = 0,
    split: str = "test",
    concurrency: int = 16,
    device: str = "cpu",
    options: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``burnish scale``: search ``n`` problems of ``task``'s split, write JSONL + summary.

    ``prm``: a PRM directory or zoo name, "logprob" (the policy's own token probabilities),
    or None for reward-free algorithms. Returns the summary (also written beside the output
    as ``<output>.summary.json``).
    """
    from burnish.models.io import load_model
    from burnish.models.zoo import resolve_model
    from burnish.scaling.engine import StepConfig
    from burnish.scaling.hf_engine import HFEngine
    from burnish.scaling.reward import LogProbReward, check_tokenizer_compatible, load_prm
    from burnish.tasks import get_task

    algo = get_algorithm(algorithm)
    from burnish.scaling.algorithms import split_budget

    split_budget(budget)
    options = dict(options or {})
    step = StepConfig(
        **{k: options.pop(k) for k in list(options) if k in StepConfig.__annotations__}
    )
    t = get_task(task)
    examples = t.generate(n, split=split, seed=seed)
    policy, tok = load_model(resolve_model(model), device=device)
    reward = None
    if prm == "logprob":
        reward = LogProbReward()
    elif prm:
        reward = load_prm(prm, device=device)
        check_tokenizer_compatible(tok, reward.tokenizer)
    opts = SearchOptions(
        engine=HFEngine(policy, tok, step), reward=reward, extract=t.extract_answer, **options
    )
    if algo.needs_reward and reward is None:
        raise ConfigError(f"algorithm {algo.name!r} needs a reward model: pass --prm")
    settings = {"algorithm": algo.name, "budget": budget, "task": task, "seed": seed}
    output = Path(output)
    done = load_done(output, settings)
    gold = {i: e for i, e in enumerate(examples)}

    def finish(i: int, row: dict) -> None:
        row.update(settings, gold=gold[i].final, correct=t.score(gold[i].prompt, row["text"]))
        append_jsonl(output, row)
        done[i] = row
        if log:
            log(f"[{len(done)}/{n}] problem {i}: {'right' if row['correct'] else 'wrong'}")

    asyncio.run(
        search_problems(
            [e.prompt for e in examples],
            algo.name,
            budget,
            opts,
            seed,
            concurrency,
            finish,
            skip=set(done),
        )
    )
    rows = [done[i] for i in sorted(done) if i < n]
    summary = summarize(rows, {**settings, "model": str(model), "prm": prm, "n": n})
    atomic_write_text(
        output.with_name(output.name + ".summary.json"), json.dumps(summary, indent=2) + "\n"
    )
    return summary
