"""Engine over any OpenAI-compatible server (vLLM, SGLang, llama.cpp, burnish's own).

Each extension is one request with ``stop=[delimiter]`` and ``max_tokens`` = the step limit:

- ``endpoint="completions"`` (default): ``POST /v1/completions`` whose prompt is the rendered
  chat prompt (``render``) plus the particle's steps so far;
- ``endpoint="chat"``: ``POST /v1/chat/completions`` with the user prompt and, once there are
  steps, an assistant message holding them that the server continues (vLLM's
  ``continue_final_message``), so the server applies its own chat template.

Every request asks for the sampled tokens' log-probabilities (``logprobs``), which become the
particle's ``step_logprobs`` (what ``--prm logprob`` scores; NaN for a step whose reply carried
text but no log-probabilities). A step ended at the delimiter or
at end-of-sequence is told apart by vLLM's ``stop_reason`` (the stop string, or null for EOS);
a server that does not send it (OpenAI's own API, llama.cpp) only says ``finish_reason
"stop"``: then a step with text is read as ended by the delimiter, and an empty one as EOS (an
EOS right after a step thus costs one more request instead of repeating to ``max_steps``).

Requests run concurrently (at most ``concurrency`` in flight), each with a timeout, retried
with exponential backoff on connection errors, timeouts, 429 and 5xx. The server sees every
prefix again each step (it may have a prefix cache; this client cannot fork KV rows). Only the
standard library is used (urllib in worker threads).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

from burnish.errors import ConfigError
from burnish.scaling.engine import EngineError, StepConfig, extend_each, finish_reason
from burnish.scaling.particles import Particle, Problem

__all__ = ["ENDPOINTS", "OpenAIEngine"]

_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def post_json(
    url: str,
    body: dict,
    api_key: str | None = None,
    timeout: float = 120.0,
    retries: int = 2,
    backoff: float = 0.5,
    on_attempt: Callable[[], None] | None = None,
) -> dict:
    """POST ``body`` as JSON and return the JSON reply, retrying 408/429/5xx and connection
    errors with exponential backoff; EngineError naming the URL once retries are spent.
    ``on_attempt`` is called before every attempt (request counters)."""
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    last, refused, status, detail = "no attempt", False, None, ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        req = urllib.request.Request(url, data=data, headers=headers)
        if on_attempt is not None:
            on_attempt()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            status, detail = e.code, _error_message(e.read())
            last = f"HTTP {status}: {detail}"
            if e.code not in _RETRY_STATUS:
                refused = True
                break
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
        except json.JSONDecodeError as e:
            last = f"reply is not JSON ({e.msg})"
            break
    if refused:
        raise EngineError(f"{url}: the server refused the request ({last})", status, detail)
    raise EngineError(
        f"{url}: request failed after {attempt + 1} attempt(s) ({last}); is an "
        "OpenAI-compatible server running there?"
    )


def _error_message(body: bytes) -> str:
    """An OpenAI error body's message, else the body's start."""
    try:
        return str(json.loads(body)["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return repr(body[:200])


ENDPOINTS = ("completions", "chat")


class OpenAIEngine:
    """Args:
    base_url: server root, e.g. ``http://127.0.0.1:8000`` (``/v1/...`` is appended).
    model: the model name the server expects.
    render: completions only: user prompt -> the text the assistant continues (e.g. a chat
        template applied with the generation prompt); default: the prompt itself.
    step: step delimiter and limits. concurrency: requests in flight.
    timeout: seconds per request. retries: extra attempts; backoff: first wait (doubles).
    endpoint: "completions" or "chat" (see the module docstring).
    api_key: sent as a Bearer token when given.
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
        endpoint: str = "completions",
        api_key: str | None = None,
    ) -> None:
        if endpoint not in ENDPOINTS:
            raise ConfigError(
                f"unknown endpoint {endpoint!r}; choose one of {', '.join(ENDPOINTS)}"
            )
        if render is not None and endpoint == "chat":
            raise ConfigError("render applies to the completions endpoint; chat renders remotely")
        self.endpoint, self.api_key = endpoint, api_key
        path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
        self.url = base_url.rstrip("/") + path
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
        return await extend_each(
            problem, particles, lambda p, seed: self._one(problem, p, temperature, seed)
        )

    async def _one(self, problem: Problem, p: Particle, temperature: float, seed: int):
        if p.finished:
            return p
        d = self.step.delimiter
        body = {
            "model": self.model,
            "max_tokens": self.step.max_step_tokens,
            "temperature": temperature,
            "stop": [d],
            "seed": seed,
            "n": 1,
            **self._prompt(problem.prompt, "".join(s + d for s in p.steps)),
        }
        assert self._sem is not None
        async with self._sem:
            reply = await asyncio.to_thread(self._post, body)
        try:
            choice = reply["choices"][0]
            text, logps = self._read(choice)
        except (KeyError, IndexError, TypeError) as e:
            msg = f"{self.url}: unexpected reply shape ({e!r}): {str(reply)[:200]}"
            raise EngineError(msg) from None
        reason = choice.get("finish_reason")
        usage = reply.get("usage") or {}
        problem.usage.prefill += int(usage.get("prompt_tokens", 0))
        problem.usage.generated += int(usage.get("completion_tokens", 0))
        problem.usage.reencode += int(usage.get("prompt_tokens", 0)) + int(
            usage.get("completion_tokens", 0)
        )
        problem.usage.policy_calls += 1
        if "stop_reason" in choice:  # vLLM / burnish: the stop string, or null for EOS
            hit_delim = reason == "stop" and choice["stop_reason"] is not None
        else:  # finish_reason alone: an empty step is read as end-of-sequence
            hit_delim = reason == "stop" and bool(text)
        hit_eos = reason == "stop" and not hit_delim
        step = text.split(d)[0]
        steps = (*p.steps, step)
        why = finish_reason(step, len(steps), hit_eos, hit_delim, self.step)
        # No log-probabilities for a step that has text: the server ignored `logprobs`; NaN
        # marks it, so a search scored by them fails clearly instead of ranking on zeros.
        mean = sum(logps) / len(logps) if logps else (math.nan if text else 0.0)
        return p.child(
            problem.next_uid(),
            steps=steps,
            step_logprobs=(*p.step_logprobs, mean),
            finished=why is not None,
            finish_reason=why,
        )

    def _prompt(self, prompt: str, so_far: str) -> dict:
        """The request fields that carry the prompt and the steps so far."""
        if self.endpoint == "completions":
            return {"prompt": self.render(prompt) + so_far, "logprobs": 0}
        messages = [{"role": "user", "content": prompt}]
        extra: dict = {"logprobs": True}
        if so_far:
            messages.append({"role": "assistant", "content": so_far})
            extra.update(add_generation_prompt=False, continue_final_message=True)
        return {"messages": messages, **extra}

    def _read(self, choice: dict) -> tuple[str, list[float]]:
        """The text of a reply's choice and its tokens' log-probabilities (empty if none)."""
        lp = choice.get("logprobs") or {}
        if self.endpoint == "completions":
            values = lp.get("token_logprobs") or []
            return choice.get("text") or "", [v for v in values if v is not None]
        content = lp.get("content") or []
        return (choice.get("message") or {}).get("content") or "", [t["logprob"] for t in content]

    def _post(self, body: dict) -> dict:
        """POST with retries; EngineError naming the URL once retries are spent."""
        return post_json(
            self.url,
            body,
            self.api_key,
            self.timeout,
            self.retries,
            self.backoff,
            on_attempt=self._count,
        )

    def _count(self) -> None:
        self.requests_sent += 1
