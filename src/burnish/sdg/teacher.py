"""The teacher: any OpenAI-compatible chat endpoint (``burnish serve``, vLLM, llama.cpp).

Requests run concurrently (asyncio, at most ``concurrency`` in flight), each retried with
exponential backoff on 408/429/5xx and connection errors and bounded by a timeout
(:func:`burnish.scaling.openai_engine.post_json`). Every reply is kept in a response cache
keyed by the request (endpoint, model and body, seed included), so a rerun or a resumed run
asks the server only for what it has not answered yet and gets the same text back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from burnish.errors import ConfigError, DataError
from burnish.io import atomic_write_text
from burnish.scaling.engine import EngineError
from burnish.scaling.openai_engine import post_json

__all__ = ["Teacher", "TeacherSettings", "default_cache"]

Messages = list[dict[str, str]]


def default_cache() -> Path:
    """``$BURNISH_CACHE/teacher`` (default ``~/.cache/burnish/teacher``)."""
    return Path(os.environ.get("BURNISH_CACHE", Path.home() / ".cache" / "burnish")) / "teacher"


@dataclass
class TeacherSettings:
    base_url: str
    model: str | None = None  # None: the first model the server lists
    api_key: str | None = None
    concurrency: int = 8
    timeout: float = 120.0
    retries: int = 3
    cache_dir: Path | None = None  # None: default_cache(); the cache is always on

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"--teacher {self.base_url!r}: give the server's URL, e.g. http://127.0.0.1:8000/v1"
            )
        if self.concurrency < 1 or self.retries < 0 or self.timeout <= 0:
            raise ConfigError("teacher: concurrency >= 1, retries >= 0 and timeout > 0 needed")


def _over_context(error: EngineError) -> bool:
    """Did the server refuse a prompt (plus max_tokens) over the model's context or its
    prompt limit? (vLLM's and ``burnish serve``'s "maximum context length", ``burnish
    serve``'s "accepts at most", llama.cpp's "context size")"""
    marks = ("context length", "context size", "tokens; this server accepts at most")
    return error.status == 400 and any(m in error.detail.lower() for m in marks)


class Teacher:
    """``chat`` one request or ``chat_many`` concurrently; replies come from the cache when
    the same request was answered before (``hits`` / ``misses`` count them)."""

    def __init__(self, settings: TeacherSettings) -> None:
        self.s = settings
        self.base = settings.base_url.rstrip("/").removesuffix("/v1") + "/v1"
        self.cache = settings.cache_dir or default_cache()
        self.model = settings.model or self._first_model()
        self.hits = self.misses = self.over_context = 0

    def _first_model(self) -> str:
        req = urllib.request.Request(self.base + "/models")
        if self.s.api_key:
            req.add_header("Authorization", f"Bearer {self.s.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=self.s.timeout) as r:
                models = json.loads(r.read()).get("data", [])
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise DataError(
                f"{self.base}/models: cannot reach the teacher ({e}); start it (e.g. "
                "`burnish serve MODEL`) or pass the right --teacher URL"
            ) from None
        if not models:
            raise DataError(f"{self.base}/models lists no model; pass --teacher-model NAME")
        return models[0]["id"]

    def _key(self, body: dict) -> Path:
        blob = json.dumps({"url": self.base, "body": body}, sort_keys=True)
        h = hashlib.sha256(blob.encode()).hexdigest()
        return self.cache / h[:2] / f"{h}.json"

    def chat(
        self,
        messages: Messages,
        n: int = 1,
        temperature: float = 0.7,
        max_tokens: int = 256,
        seed: int = 0,
    ) -> list[str]:
        """``n`` replies to ``messages`` (a chat completion with ``n`` choices)."""
        body = {
            "model": self.model,
            "messages": messages,
            "n": n,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "seed": seed,
        }
        path = self._key(body)
        if path.is_file():
            self.hits += 1
            return json.loads(path.read_text(encoding="utf-8"))["texts"]
        self.misses += 1
        try:
            reply = post_json(self.base + "/chat/completions", body, self.s.api_key,
                              self.s.timeout, self.s.retries)  # fmt: skip
        except EngineError as e:
            if not _over_context(e):
                raise
            self.over_context += 1  # a too-long prompt is this row's loss, not the run's
            return []
        try:
            choices = sorted(reply["choices"], key=lambda c: c.get("index", 0))
            texts = [c["message"]["content"] or "" for c in choices]
        except (KeyError, TypeError) as e:
            raise DataError(f"{self.base}: a chat reply without choices/message ({e})") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"texts": texts}) + "\n")
        return texts

    def token_counter(self) -> Callable[[str], int]:
        """Token counts under the teacher's own tokenizer, from the server's ``POST
        /tokenize`` (vLLM's endpoint; ``burnish serve`` has it too); DataError when the
        server has none."""
        url = self.base.removesuffix("/v1") + "/tokenize"
        seen: dict[str, int] = {}

        def count(text: str) -> int:
            if text not in seen:
                body = {"model": self.model, "prompt": text, "add_special_tokens": False}
                try:
                    reply = post_json(url, body, self.s.api_key, self.s.timeout, self.s.retries)
                    seen[text] = int(reply["count"])
                except (EngineError, KeyError, TypeError, ValueError) as e:
                    raise DataError(
                        f"{url}: the teacher cannot count tokens ({e}); pass "
                        "--teacher-tokenizer with a local copy of its tokenizer"
                    ) from None
            return seen[text]

        return count

    def chat_many(self, requests: Sequence[dict]) -> list[list[str]]:
        """Every request (keyword arguments of :meth:`chat`), at most ``concurrency`` at a
        time; replies in request order."""

        async def run() -> list[list[str]]:
            gate = asyncio.Semaphore(self.s.concurrency)

            async def one(kw: dict) -> list[str]:
                async with gate:
                    return await asyncio.to_thread(self.chat, **kw)

            return await asyncio.gather(*(one(kw) for kw in requests))

        return asyncio.run(run()) if requests else []
