"""Run a search over held-out problems: JSONL per problem (resumable) + a summary.

Problems come from a task's split (seeded, with task options) or from the user's own JSONL
(``{"prompt": ..., "answer": ...}`` a line). Every finished problem is appended to the output
JSONL at once (flushed), so a killed run loses at most the problems in flight. Every row
carries the whole search configuration (policy and PRM by content, problems, seeds, search
options); ``resume`` continues a file only when that configuration is the same, and names
the first field that differs otherwise. A torn last line (killed mid-write) is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from burnish.errors import BurnishError, ConfigError, DataError, OutputExistsError
from burnish.io import append_jsonl, atomic_write_text, check_output_file, read_jsonl
from burnish.scaling.algorithms import SearchOptions, get_algorithm
from burnish.scaling.particles import Problem
from burnish.scaling.settings import SearchSettings
from burnish.tasks.base import normalize_whitespace

__all__ = [
    "SearchProblem",
    "file_problems",
    "load_done",
    "run_search",
    "search_problems",
    "summarize",
    "task_problems",
]

_ROW_KEYS = ("algorithm", "budget", "task", "seed")  # also kept at the top of every row


@dataclass(frozen=True)
class SearchProblem:
    """A prompt and its gold final answer (what ``Answer:`` must say)."""

    prompt: str
    answer: str


def task_problems(
    task: str, n: int, split: str, seed: int, options: dict[str, Any] | None = None
) -> list[SearchProblem]:
    """The first ``n`` problems of ``task``'s ``split`` (seeded; ``options`` are task knobs)."""
    from burnish.tasks import get_task

    examples = get_task(task, **(options or {})).generate(n, split=split, seed=seed)
    return [SearchProblem(e.prompt, e.final) for e in examples]


def file_problems(path: str | Path, n: int | None = None) -> list[SearchProblem]:
    """Problems from a JSONL file of ``{"prompt": str, "answer": str | number}`` rows (the
    first ``n``); DataError naming the line for anything else."""
    rows = read_jsonl(path)
    if not rows:
        raise DataError(f"{path}: the file has no problems")
    out = []
    for i, row in enumerate(rows[:n] if n else rows, start=1):
        prompt, answer = row.get("prompt"), row.get("answer")
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError(f"{path}:{i}: expected a non-empty string 'prompt'")
        if isinstance(answer, bool) or not isinstance(answer, str | int | float):
            raise DataError(f"{path}:{i}: expected an 'answer' (the final answer, a string)")
        out.append(SearchProblem(prompt, str(answer)))
    return out


def _file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _first_difference(saved: dict, now: dict) -> str | None:
    for key in sorted(set(saved) | set(now)):
        if saved.get(key) != now.get(key):
            return f"{key} was {saved.get(key)!r}, this run has {now.get(key)!r}"
    return None


def load_done(path: Path, config: dict[str, Any]) -> dict[int, dict]:
    """Rows already in ``path`` by problem index; drops a torn last line; ConfigError naming
    the first field where a row's search configuration differs from ``config``."""
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
        if not isinstance(row, dict) or "config" not in row or "index" not in row:
            raise ConfigError(f"{path}:{i + 1}: not a row of `burnish scale` (no 'config')")
        diff = _first_difference(row["config"], config)
        if diff is not None:
            raise ConfigError(
                f"{path}:{i + 1}: made with another search configuration ({diff}); resume "
                "with the same settings, or use --overwrite or another output"
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
    sem = asyncio.Semaphore(max(1, concurrency))
    out: dict[int, dict] = {}

    async def one(i: int, prompt: str) -> None:
        async with sem:
            problem = Problem(prompt, seed=seed)
            t0 = time.perf_counter()
            result = await algo(problem, budget, opts)
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


def _prepare_output(output: Path, resume: bool, overwrite: bool) -> None:
    """Refuse results of an earlier run unless ``resume`` (continue) or ``overwrite``."""
    if resume and overwrite:
        raise ConfigError("choose one of --resume (continue the file) and --overwrite")
    check_output_file(output, overwrite=True)  # a folder is never an output file
    if output.exists() and not (resume or overwrite):
        raise OutputExistsError(
            f"{output}: already holds search results; pass --resume to continue that run "
            "(same settings), --overwrite to start again, or choose another output"
        )
    if overwrite:
        output.unlink(missing_ok=True)
        _summary_path(output).unlink(missing_ok=True)


def _summary_path(output: Path) -> Path:
    return output.with_name(output.name + ".summary.json")


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
    *,
    problems: str | Path | None = None,
    task_options: dict[str, Any] | None = None,
    problem_seed: int = 0,
    prm_kind: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_pickle: bool = False,
    chat_template: str | Path | None = None,
    engine: str | None = None,
    api_key: str | None = None,
) -> dict[str, Any]:
    """``burnish scale``: search ``n`` problems, write one JSONL row each + a summary.

    Args:
        prm: a PRM directory or zoo name, "logprob" (the policy's own token probabilities),
            or None for reward-free algorithms. ``prm_kind`` names the head of a model whose
            card does not say it is a PRM (see :func:`burnish.scaling.reward.load_prm`).
        task: whose answer format and extraction to use, and whose ``split`` problems
            (``task_options`` knobs, drawn with ``problem_seed``) to search unless
            ``problems`` (a JSONL of prompt/answer rows) is given.
        seed: the search's own randomness (sampling, resampling), separate from the problems.
        options: :class:`SearchOptions` fields (temperature, tau, ...) and
            :class:`~burnish.scaling.engine.StepConfig` fields; unset ones take their defaults.
        resume / overwrite: continue an existing ``output`` made with the same configuration
            (more problems may be added), or replace it; otherwise an existing file is refused.
        engine: the URL of an OpenAI-compatible server to sample the policy from (``model``
            is then the name it serves) through its chat endpoint, with ``api_key`` if given;
            None loads ``model`` here.
    Returns the summary (also written beside the output as ``<output>.summary.json``).
    """
    from burnish.scaling.algorithms import split_budget
    from burnish.tasks import get_task

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n (problems to search) must be at least 1, got {n!r}")
    algo = get_algorithm(algorithm)
    split_budget(budget)
    t = get_task(task)
    output = Path(output)
    _prepare_output(output, resume, overwrite)
    todo, source = _problems(problems, n, task, split, problem_seed, task_options)
    opts, ids = _search_options(
        model,
        prm,
        prm_kind,
        t.extract_answer,
        dict(options or {}),
        device,
        allow_pickle,
        chat_template,
        _Remote(engine, api_key, concurrency) if engine else None,
    )
    settings = {"algorithm": algo.name, "budget": budget, "task": task, "seed": seed}
    config = {**settings, **source, **ids, "prm_kind": prm_kind, **opts.settings()}
    done = load_done(output, config) if resume else {}
    results = _Results(output, todo, {**settings, "config": config}, t.extract_answer, log, done)
    prompts = [p.prompt for p in todo]
    asyncio.run(
        search_problems(
            prompts, algo.name, budget, opts, seed, concurrency, results.record, set(done)
        )
    )
    meta = {**settings, "model": str(model), "prm": prm, "n": len(todo), "problems_file": problems}
    return results.summary(meta)


@dataclass
class _Results:
    """Scores and appends each finished problem's row; writes the summary at the end."""

    output: Path
    todo: list[SearchProblem]
    stamp: dict[str, Any]  # added to every row: the settings and the whole configuration
    extract: Callable[[str], str | None]
    log: Callable[[str], None] | None
    done: dict[int, dict]

    def record(self, i: int, row: dict) -> None:
        gold = self.todo[i].answer
        answer = self.extract(row["text"])
        correct = answer is not None and normalize_whitespace(answer) == normalize_whitespace(gold)
        row.update(self.stamp, gold=gold, correct=correct)
        append_jsonl(self.output, row)
        self.done[i] = row
        if self.log:
            verdict = "right" if correct else "wrong"
            self.log(f"[{len(self.done)}/{len(self.todo)}] problem {i}: {verdict}")

    def summary(self, meta: dict[str, Any]) -> dict[str, Any]:
        rows = [self.done[i] for i in sorted(self.done) if i < len(self.todo)]
        clean = {k: str(v) if isinstance(v, Path) else v for k, v in meta.items()}
        summary = summarize(rows, clean)
        atomic_write_text(_summary_path(self.output), json.dumps(summary, indent=2) + "\n")
        return summary


def _problems(
    problems: str | Path | None,
    n: int,
    task: str,
    split: str,
    problem_seed: int,
    task_options: dict[str, Any] | None,
) -> tuple[list[SearchProblem], dict[str, Any]]:
    """The problems to search, and what identifies them in the resume configuration."""
    if problems is not None:
        return file_problems(problems, n), {"problems": _file_hash(problems)}
    source = {
        "split": split,
        "task_options": dict(task_options or {}),
        "problem_seed": problem_seed,
    }
    return task_problems(task, n, split, problem_seed, task_options), source


@dataclass(frozen=True)
class _Remote:
    """A policy served elsewhere: the server's URL, its Bearer token, requests in flight."""

    url: str
    api_key: str | None
    concurrency: int


def _search_options(
    model: str,
    prm: str | None,
    prm_kind: str | None,
    extract: Callable[[str], str | None],
    options: dict[str, Any],
    device: str,
    allow_pickle: bool,
    chat_template: str | Path | None,
    remote: _Remote | None = None,
) -> tuple[SearchOptions, dict[str, Any]]:
    """The policy engine (loaded here, or ``remote``) and reward model as SearchOptions
    (``options`` split into step and search settings), and what identifies them: the content
    fingerprints of local models, the URL and served name of a remote policy."""
    from burnish.models.io import load_model, model_fingerprint
    from burnish.models.zoo import resolve_model
    from burnish.scaling.engine import StepConfig
    from burnish.scaling.hf_engine import HFEngine
    from burnish.scaling.openai_engine import OpenAIEngine
    from burnish.scaling.reward import check_tokenizer_compatible, reward_model

    step = StepConfig(
        **{k: options.pop(k) for k in list(options) if k in StepConfig.__annotations__}
    )
    tok = None
    if remote is None:
        policy, tok = load_model(
            resolve_model(model),
            device=device,
            allow_pickle=allow_pickle,
            chat_template=chat_template,
        )
        engine = HFEngine(policy, tok, step)
        model_id = model_fingerprint(policy)
    else:
        engine = OpenAIEngine(
            remote.url,
            model,
            step=step,
            endpoint="chat",
            api_key=remote.api_key,
            concurrency=remote.concurrency,
        )
        model_id = f"{remote.url.rstrip('/')}#{model}"
    reward = reward_model(prm, device=device, kind=prm_kind, allow_pickle=allow_pickle)
    prm_id = prm
    if reward is not None and hasattr(reward, "model"):  # a PRM model, not 'logprob'
        if tok is not None:  # a remote policy's tokenizer is not here to compare
            check_tokenizer_compatible(tok, reward.tokenizer)
        prm_id = model_fingerprint(reward.model)
    unknown = sorted(set(options) - set(SearchSettings.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"unknown search option {unknown[0]!r}")
    opts = SearchOptions(engine=engine, reward=reward, extract=extract, **options)
    ids = {"model": model_id, "prm": prm_id, "step": asdict(step)}
    return opts, ids


def describe_output(output: str | Path) -> str:
    """How many problems an interrupted ``burnish scale`` has written (for its exit line)."""
    output = Path(output)
    if not output.is_file():
        return f"no problem was finished; nothing was written to {output}"
    try:
        finished = sum(1 for line in output.read_text(encoding="utf-8").splitlines() if line)
    except (OSError, UnicodeDecodeError, BurnishError):
        finished = 0
    return (
        f"{output} holds {finished} finished problem(s); run the same command with --resume "
        "to search the rest"
    )
