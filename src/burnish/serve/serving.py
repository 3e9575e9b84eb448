"""Serving logic shared by the endpoints: prompt checks against the caps, running requests on
the engine with timeouts and cancellation, and the error type routes turn into OpenAI errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from pydantic import BaseModel
from transformers import PreTrainedTokenizerBase

from burnish.serve.engine import (
    Delta,
    EngineClosedError,
    GenerationStream,
    QueueFullError,
    SamplingParams,
    ServeEngine,
    TokenInfo,
)
from burnish.serve.limits import ServeLimits
from burnish.serve.protocol import ErrorBody, ErrorResponse, SamplingFields

__all__ = ["APIError", "ChoiceResult", "Serving", "sse"]

_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    413: "RequestTooLargeError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


class APIError(Exception):
    """An error the client receives as an OpenAI error object with ``status``."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param

    def body(self) -> ErrorResponse:
        kind = _ERROR_TYPES.get(self.status, "APIError")
        return ErrorResponse(
            error=ErrorBody(message=self.message, type=kind, param=self.param, code=self.status)
        )


def sse(payload: BaseModel | dict | str) -> str:
    """One server-sent event: ``data: <json>`` and a blank line."""
    if isinstance(payload, BaseModel):
        payload = payload.model_dump_json()
    elif isinstance(payload, dict):
        payload = json.dumps(payload)
    return f"data: {payload}\n\n"


@dataclass
class ChoiceResult:
    """Everything one choice produced."""

    text: str = ""
    tokens: list[TokenInfo] = field(default_factory=list)
    finish_reason: str | None = None
    stop_reason: str | None = None
    count: int = 0  # tokens sampled

    def add(self, d: Delta) -> None:
        self.count += d.count
        self.text += d.text
        self.tokens.extend(d.tokens)
        self.finish_reason = d.finish_reason or self.finish_reason
        self.stop_reason = d.stop_reason or self.stop_reason


class Serving:
    """What every endpoint needs: the engine, the tokenizer, the served name and the caps."""

    def __init__(
        self,
        engine: ServeEngine,
        tokenizer: PreTrainedTokenizerBase,
        model_name: str,
        limits: ServeLimits,
    ) -> None:
        self.engine, self.tokenizer, self.model_name, self.limits = (
            engine,
            tokenizer,
            model_name,
            limits,
        )

    def check_model(self, name: str) -> None:
        if name != self.model_name:
            raise APIError(404, f"The model `{name}` does not exist.", "model")

    def max_prompt(self) -> int:
        cap = self.limits.max_prompt_tokens
        return min(cap, self.engine.context) if cap else self.engine.context

    def check_request(self, prompt: list[int], max_tokens: int | None, n: int) -> int:
        """Check one prompt against the caps; returns the tokens to generate at most."""
        if n > self.limits.max_n:
            raise APIError(400, f"n = {n} is above this server's limit of {self.limits.max_n}", "n")
        if not prompt:
            raise APIError(400, "the prompt is empty (no tokens)", "prompt")
        if len(prompt) > self.max_prompt():
            raise APIError(
                400,
                f"the prompt has {len(prompt)} tokens; this server accepts at most "
                f"{self.max_prompt()}",
                "prompt",
            )
        room = self.engine.context - len(prompt)
        if max_tokens is None:
            return max(1, min(self.limits.max_tokens, room))
        if max_tokens > self.limits.max_tokens:
            raise APIError(
                400,
                f"max_tokens = {max_tokens} is above this server's limit of "
                f"{self.limits.max_tokens}",
                "max_tokens",
            )
        if max_tokens > room:
            raise APIError(
                400,
                f"This model's maximum context length is {self.engine.context} tokens. However, "
                f"you requested {len(prompt) + max_tokens} tokens ({len(prompt)} in the prompt, "
                f"{max_tokens} for the completion). Please reduce the prompt or max_tokens.",
                "max_tokens",
            )
        return max_tokens

    def sampling(
        self,
        req: SamplingFields,
        prompt: list[int],
        max_tokens: int | None,
        logprobs: int | None,
        prompt_logprobs: int | None,
    ) -> SamplingParams:
        """The engine's parameters for ``req`` on ``prompt`` (caps checked)."""
        return SamplingParams(
            max_tokens=self.check_request(prompt, max_tokens, req.n),
            temperature=req.temperature,
            top_p=req.top_p,
            n=req.n,
            stop=tuple(req.stop_list()),
            seed=req.seed,
            logprobs=logprobs,
            prompt_logprobs=prompt_logprobs,
            ignore_eos=req.ignore_eos,
        )

    def submit(self, prompts: list[list[int]], params: list[SamplingParams]) -> list:
        """Queue one engine request per prompt (all or none: 429 when the queue is full)."""
        streams: list[GenerationStream] = []
        try:
            for p, sp in zip(prompts, params, strict=True):
                streams.append(self.engine.submit(p, sp))
        except (QueueFullError, EngineClosedError) as e:
            for s in streams:
                s.cancel()
            if isinstance(e, QueueFullError):
                raise APIError(429, f"the server is busy: {e}") from None
            raise APIError(503, str(e)) from None
        return streams

    async def events(
        self, streams: list[GenerationStream], disconnected: Callable | None = None
    ) -> AsyncIterator[tuple[int, object]]:
        """``(prompt index, event)`` from all ``streams`` as they come, within the request
        timeout; every stream is cancelled when this ends early (an error, a timeout, the
        client gone: ``disconnected`` is an async callable polled meanwhile)."""
        queue: asyncio.Queue = asyncio.Queue()

        async def pump(i: int, s: GenerationStream) -> None:
            try:
                async for ev in s:
                    await queue.put((i, ev))
            except Exception as e:
                await queue.put((i, e))
            await queue.put((i, None))

        tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
        watcher = asyncio.create_task(_watch(disconnected, queue)) if disconnected else None
        open_streams = len(streams)
        try:
            async with asyncio.timeout(self.limits.request_timeout):
                while open_streams:
                    i, ev = await queue.get()
                    if ev is None:
                        open_streams -= 1
                    elif isinstance(ev, _Gone):
                        raise asyncio.CancelledError("client disconnected")
                    elif isinstance(ev, Exception):
                        raise APIError(503, f"generation failed: {ev}")
                    else:
                        yield i, ev
        except TimeoutError:
            raise APIError(
                503, f"the request ran past this server's {self.limits.request_timeout:g} s limit"
            ) from None
        finally:
            for s in streams:
                s.cancel()
            for t in [*tasks, *([watcher] if watcher else [])]:
                t.cancel()


class _Gone:
    """Marker: the client disconnected."""


async def _watch(disconnected: Callable, queue: asyncio.Queue) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        while not await disconnected():
            await asyncio.sleep(0.1)
        await queue.put((-1, _Gone()))
