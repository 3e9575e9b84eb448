"""``burnish label``: sample k responses per prompt from a policy, score them with a reward
(Dr.SoW), keep best vs worst, write TRL's conversational preference JSONL.

Output rows: ``id``, ``prompt`` (messages), ``chosen`` / ``rejected`` (one assistant
message each), ``score_chosen``, ``score_rejected``, ``scores`` (all k). A prompt whose best
and worst responses are the same text, or whose margin is below ``margin``, gives no row.

Prompts are labelled in fixed chunks; chunk c is sampled with seed ``seed + c`` (in-process:
one seeded ``generate`` for the chunk; through a server: the request's ``seed`` per prompt).
After each chunk its rows are appended and ``OUT.progress.json`` (chunks done, rows written,
the settings) is rewritten atomically; a resumed run first cuts OUT back to the rows the
ledger counts (a chunk interrupted mid-write is redone whole), so a killed run resumes with no
row lost or duplicated and ends with exactly the rows of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from burnish.errors import ConfigError, DataError, OutputExistsError
from burnish.eval.generate import generate_chat
from burnish.io import atomic_write_text, check_output_file, read_jsonl
from burnish.progress import progress_bar
from burnish.reward.logprobs import Conversation
from burnish.scaling.openai_engine import post_json

__all__ = [
    "LabelSettings",
    "LocalSampler",
    "ServerSampler",
    "label_prompts",
    "load_prompts",
    "progress_path",
]

Sampler = Callable[[Sequence[Conversation], int, int], list[list[str]]]
Scorer = Callable[[Sequence[Conversation]], list[float]]


@dataclass
class LabelSettings:
    k: int = 4  # responses sampled per prompt
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    margin: float = 0.0  # keep a pair only when best - worst >= margin
    chunk: int = 8  # prompts per chunk (the unit of resumption)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 2:
            raise ConfigError(f"--k must be at least 2 (best vs worst), got {self.k}")
        if self.temperature <= 0:
            raise ConfigError("sampling k different responses needs --temperature > 0")
        if self.chunk < 1 or self.max_tokens < 1:
            raise ConfigError("--chunk and --max-tokens must be at least 1")


def load_prompts(path: str | Path) -> list[tuple[str, Conversation]]:
    """``(id, messages)`` per JSONL row with ``prompt`` (a string or a message list) and an
    optional ``id`` (default: the row number); ids must be unique."""
    out, seen = [], set()
    for i, row in enumerate(read_jsonl(path), start=1):
        where = f"{path}: row {i}"
        if "prompt" not in row:
            raise DataError(f"{where}: missing `prompt`")
        p = row["prompt"]
        msgs = [{"role": "user", "content": p}] if isinstance(p, str) else p
        if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) for m in msgs):
            raise DataError(f"{where}: `prompt` must be a string or a list of messages")
        pid = str(row.get("id", i))
        if pid in seen:
            raise DataError(f"{where}: duplicate id {pid!r}")
        seen.add(pid)
        out.append((pid, [{"role": m.get("role"), "content": m.get("content")} for m in msgs]))
    if not out:
        raise DataError(f"{path}: no prompts")
    return out


class LocalSampler:
    """k samples per prompt from an in-process policy (one seeded generate per chunk)."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, s: LabelSettings
    ) -> None:
        self.model, self.tokenizer, self.s = model, tokenizer, s

    def __call__(self, prompts: Sequence[Conversation], k: int, seed: int) -> list[list[str]]:
        return generate_chat(
            self.model,
            self.tokenizer,
            list(prompts),
            self.s.max_tokens,
            k,
            self.s.temperature,
            self.s.top_p,
            seed=seed,
        )


class ServerSampler:
    """k samples per prompt from an OpenAI-compatible chat endpoint (``n = k``, a seed per
    prompt)."""

    def __init__(
        self,
        base_url: str,
        model_name: str,
        s: LabelSettings,
        api_key: str | None = None,
        concurrency: int = 4,
    ) -> None:
        self.url = base_url.rstrip("/").removesuffix("/v1") + "/v1/chat/completions"
        self.model_name, self.s, self.api_key, self.concurrency = (
            model_name,
            s,
            api_key,
            concurrency,
        )

    def _one(self, args: tuple[Conversation, int, int]) -> list[str]:
        msgs, k, seed = args
        body = {
            "model": self.model_name,
            "messages": msgs,
            "n": k,
            "seed": seed,
            "temperature": self.s.temperature,
            "top_p": self.s.top_p,
            "max_tokens": self.s.max_tokens,
        }
        doc = post_json(self.url, body, self.api_key)
        return [c["message"]["content"] for c in sorted(doc["choices"], key=lambda c: c["index"])]

    def __call__(self, prompts: Sequence[Conversation], k: int, seed: int) -> list[list[str]]:
        jobs = [(p, k, seed * 1_000_003 + i) for i, p in enumerate(prompts)]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._one, jobs))


def progress_path(out: Path) -> Path:
    return out.with_name(out.name + ".progress.json")


def _start(out: Path, settings: dict, resume: bool, overwrite: bool) -> tuple[int, int]:
    """(chunks done, rows kept) of an earlier run to resume, else (0, 0) with OUT empty."""
    ledger = progress_path(out)
    check_output_file(out, overwrite=True)
    if resume and overwrite:
        raise ConfigError("choose one of --resume (continue the file) and --overwrite")
    if out.exists() and not (resume or overwrite):
        raise OutputExistsError(
            f"{out}: already exists; pass --resume to continue that run, --overwrite to start "
            "again, or choose another output"
        )
    if not resume or not ledger.is_file():
        if out.exists() and resume:
            raise ConfigError(f"{out}: no {ledger.name} beside it, so it cannot be resumed")
        atomic_write_text(out, "")
        return 0, 0
    doc = json.loads(ledger.read_text())
    if doc.get("settings") != settings:
        raise ConfigError(
            f"{out}: labelled with other settings ({doc.get('settings')}); use them or --overwrite"
        )
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    atomic_write_text(out, "".join(lines[: doc["rows"]]))  # drop an interrupted chunk's rows
    return doc["chunks"], doc["rows"]


def _pair(
    pid: str, prompt: Conversation, texts: list[str], scores: list[float], margin: float
) -> dict | None:
    best = max(range(len(texts)), key=scores.__getitem__)
    worst = min(range(len(texts)), key=scores.__getitem__)
    if texts[best].strip() == texts[worst].strip() or scores[best] - scores[worst] < margin:
        return None
    return {
        "id": pid,
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": texts[best]}],
        "rejected": [{"role": "assistant", "content": texts[worst]}],
        "score_chosen": scores[best],
        "score_rejected": scores[worst],
        "scores": scores,
    }


def label_prompts(
    prompts: list[tuple[str, Conversation]],
    sampler: Sampler,
    scorer: Scorer,
    out: str | Path,
    settings: LabelSettings,
    identity: dict | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Label ``prompts`` into ``out``; returns a summary (prompts, pairs, skipped).
    ``identity`` (policy, reward, data) joins the settings a resume must match."""
    out = Path(out)
    config = {**asdict(settings), **(identity or {}), "prompts": len(prompts)}
    chunks = [prompts[i : i + settings.chunk] for i in range(0, len(prompts), settings.chunk)]
    done, rows = _start(out, config, resume, overwrite)
    with progress_bar(
        len(prompts), "label", progress, done=min(len(prompts), done * settings.chunk)
    ) as advance:
        for c in range(done, len(chunks)):
            chunk = chunks[c]
            samples = sampler([p for _, p in chunk], settings.k, settings.seed + c)
            convs = [
                [*p, {"role": "assistant", "content": t}]
                for (_, p), ts in zip(chunk, samples, strict=True)
                for t in ts
            ]
            scores = scorer(convs)
            kept = []
            for j, (pid, p) in enumerate(chunk):
                row = _pair(
                    pid,
                    p,
                    samples[j],
                    scores[j * settings.k : (j + 1) * settings.k],
                    settings.margin,
                )
                kept += [row] if row else []
            with out.open("a", encoding="utf-8") as f:
                f.write("".join(json.dumps(r) + "\n" for r in kept))
                f.flush()
                os.fsync(f.fileno())
            rows += len(kept)
            atomic_write_text(
                progress_path(out),
                json.dumps({"chunks": c + 1, "rows": rows, "settings": config}) + "\n",
            )
            advance(len(chunk), info=f"pairs {rows}")
    return {
        "prompts": len(prompts),
        "pairs": rows,
        "skipped": len(prompts) - rows,
        "output": str(out),
    }
