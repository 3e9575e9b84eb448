"""Engine over any OpenAI-compatible server (vLLM, SGLang, llama.cpp, burnish's own).

Each extension is one ``POST /v1/completions`` whose prompt is the rendered chat prompt plus the
particle's steps so far, with ``stop=[delimiter]`` and ``max_tokens`` = the step limit. Requests
run concurrently (at most ``concurrency`` in flight), each with a timeout, retried with
exponential backoff on connection errors, timeouts, 429 and 5xx. The server sees every prefix
again each step (it may have a prefix cache; this client cannot fork KV rows). Only the
standard library is used (urllib in worker threads).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

import torch

from burnish.scaling.engine import EngineError, StepConfig, finish_reason
from burnish.scaling.particles import Particle, Problem

__all__ = ["OpenAIEngine"]

_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class OpenAIEngine:
    """Args:
    base_url: server root, e.g. ``http://127.0.0.1:8000`` (``/v1/completions`` is appended).
    model: the model name the server expects.
    render: user prompt -> the text the assistant continues (e.g. a chat template applied
        with the generation prompt); default: the prompt itself.
    step: step delimiter and limits. concurrency: requests in flight.
    timeout: seconds per request. retries: extra attempts; backoff: first wait (doubles).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        render: Callable[[str], str] | None = None,
        step: StepConfig | None = None,
        concurrency: int = 8,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.url = base_url.rstrip("/") + "/v1/completions"
        self.model = model
        self.render = render or (lambda p: p)
        self.step = step or StepConfig()
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._sem: asyncio.Semaphore | None = None
        self.concurrency = concurrency
        self.requests_sent = 0

    async def start(self, problem: Problem, n: int) -> list[Particle]:
        return [Particle(uid=problem.next_uid()) for _ in range(n)]

    async def extend(
        self, problem: Problem, particles: Sequence[Particle], temperature: float
    ) -> list[Particle]:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        seeds = [int(torch.randint(2**31 - 1, (1,), generator=problem.sampler)) for _ in particles]
        return list(
            await asyncio.gather(
                *(
                    self._one(problem, p, temperature, s)
                    for p, s in zip(particles, seeds, strict=True)
                )
            )
        )

    async def _one(self, problem: Problem, p: Particle, temperature: float, seed: int):
        if p.finished:
            return p
        d = self.step.delimiter
        body = {
            "model": self.model,
            "prompt": self.render(problem.prompt) + "".join(s + d for s in p.steps),
            "max_tokens": self.step.max_step_tokens,
            "temperature": temperature,
            "stop": [d],
            "seed": seed,
            "n": 1,
        }
        assert self._sem is not None
        async with self._sem:
            reply = await asyncio.to_thread(self._post, body)
        choice = reply["choices"][0]
        text, reason = choice.get("text", ""), choice.get("finish_reason")
        usage = reply.get("usage") or {}
        problem.usage.prefill += int(usage.get("prompt_tokens", 0))
        problem.usage.generated += int(usage.get("completion_tokens", 0))
        problem.usage.reencode += int(usage.get("prompt_tokens", 0)) + int(
            usage.get("completion_tokens", 0)
        )
        problem.usage.policy_calls += 1
        hit_delim = reason == "stop" and choice.get("stop_reason", d) is not None
        hit_eos = reason == "stop" and not hit_delim
        step = text.split(d)[0]
        steps = (*p.steps, step)
        why = finish_reason(step, len(steps), hit_eos, hit_delim, self.step)
        return p.child(problem.next_uid(), steps=steps, finished=why is not None, finish_reason=why)

    def _post(self, body: dict) -> dict:
        """POST with retries; EngineError naming the URL once retries are spent."""
        data = json.dumps(body).encode()
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(
                self.url, data=data, headers={"Content-Type": "application/json"}
            )
            self.requests_sent += 1
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read()[:200]!r}"
                if e.code not in _RETRY_STATUS:
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            except json.JSONDecodeError as e:
                last = f"reply is not JSON ({e.msg})"
                break
        raise EngineError(
            f"{self.url}: request failed after {attempt + 1} attempt(s) ({last}); is an "
            "OpenAI-compatible server running there?"
        )
