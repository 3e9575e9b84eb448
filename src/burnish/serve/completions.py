"""``POST /v1/completions``: text completion, streamed or not, with logprobs and echo."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from burnish.serve.engine import Delta, SamplingParams, TokenInfo
from burnish.serve.protocol import (
    CompletionChoice,
    CompletionChunk,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
    UsageInfo,
    new_id,
)
from burnish.serve.serving import APIError, ChoiceResult, Serving, sse

__all__ = ["CompletionServing"]


class CompletionServing(Serving):
    def encode(self, req: CompletionRequest) -> list[list[int]]:
        prompts = req.prompts()
        if len(prompts) > self.limits.max_prompts:
            raise APIError(
                400, f"{len(prompts)} prompts; this server accepts {self.limits.max_prompts}"
            )
        vocab = len(self.tokenizer)
        out = []
        for p in prompts:
            if isinstance(p, str):
                ids = list(self.tokenizer(p)["input_ids"])
            else:
                ids = list(p)
                if any(not 0 <= t < vocab for t in ids):
                    raise APIError(400, f"prompt token ids must be in [0, {vocab})", "prompt")
            out.append(ids)
        return out

    def params(self, req: CompletionRequest, prompt: list[int]) -> SamplingParams:
        echo_lp = req.logprobs if (req.echo and req.logprobs is not None) else None
        return self.sampling(req, prompt, req.max_tokens, req.logprobs, echo_lp)

    def start(self, req: CompletionRequest) -> tuple[list[list[int]], list]:
        self.check_model(req.model)
        prompts = self.encode(req)
        params = [self.params(req, p) for p in prompts]
        return prompts, self.submit(prompts, params)

    async def complete(self, req: CompletionRequest, disconnected: Callable) -> CompletionResponse:
        prompts, streams = self.start(req)
        results = [[ChoiceResult() for _ in range(req.n)] for _ in prompts]
        prompt_infos: list[list | None] = [None] * len(prompts)
        async for i, ev in self.events(streams, disconnected):
            if isinstance(ev, Delta):
                results[i][ev.index].add(ev)
            else:
                prompt_infos[i] = ev
        choices = []
        for i, per_prompt in enumerate(results):
            echo = self.tokenizer.decode(prompts[i]) if req.echo else ""
            for j, r in enumerate(per_prompt):
                logprobs = None
                if req.logprobs is not None:
                    first = self.tokenizer.decode(prompts[i][:1])
                    logprobs = _logprobs(prompt_infos[i] if req.echo else None, r.tokens, 0, first)
                choices.append(
                    CompletionChoice(
                        index=i * req.n + j,
                        text=echo + r.text,
                        logprobs=logprobs,
                        finish_reason=r.finish_reason,
                        stop_reason=r.stop_reason,
                    )
                )
        generated = sum(r.count for per in results for r in per)
        return CompletionResponse(
            id=new_id("cmpl"),
            model=self.model_name,
            choices=choices,
            usage=_usage(prompts, generated),
        )

    def stream(self, req: CompletionRequest, disconnected: Callable) -> AsyncIterator[str]:
        """Check and queue the request (APIError now, before any response is sent), then
        return its SSE chunks."""
        prompts, streams = self.start(req)
        return self._chunks(req, prompts, streams, disconnected)

    async def _chunks(self, req, prompts, streams, disconnected) -> AsyncIterator[str]:
        rid, generated = new_id("cmpl"), 0
        offsets = [[0] * req.n for _ in prompts]
        try:
            async for i, ev in self.events(streams, disconnected):
                if not isinstance(ev, Delta):  # echoed prompt: sent before the first token
                    if req.echo:
                        text = self.tokenizer.decode(prompts[i])
                        for j in range(req.n):
                            first = self.tokenizer.decode(prompts[i][:1])
                            lp = None if req.logprobs is None else _logprobs(ev, [], 0, first)
                            yield sse(_chunk(rid, self.model_name, i * req.n + j, text, lp))
                            offsets[i][j] = len(text)
                    continue
                generated += ev.count
                lp = None
                if req.logprobs is not None:
                    lp = _logprobs(None, list(ev.tokens), offsets[i][ev.index])
                    offsets[i][ev.index] += sum(len(t.text) for t in ev.tokens)
                index = i * req.n + ev.index
                yield sse(
                    _chunk(
                        rid, self.model_name, index, ev.text, lp, ev.finish_reason, ev.stop_reason
                    )
                )
            if req.stream_options and req.stream_options.include_usage:
                usage = _usage(prompts, generated)
                yield sse(CompletionChunk(id=rid, model=self.model_name, choices=[], usage=usage))
        except APIError as e:
            yield sse(e.body())
        yield "data: [DONE]\n\n"


def _chunk(rid, model, index, text, logprobs, finish=None, stop=None) -> CompletionChunk:
    choice = CompletionChoice(
        index=index, text=text, logprobs=logprobs, finish_reason=finish, stop_reason=stop
    )
    return CompletionChunk(id=rid, model=model, choices=[choice])


def _usage(prompts: list[list[int]], generated: int) -> UsageInfo:
    n_prompt = sum(len(p) for p in prompts)
    return UsageInfo(
        prompt_tokens=n_prompt, completion_tokens=generated, total_tokens=n_prompt + generated
    )


def _logprobs(
    prompt: list[TokenInfo | None] | None,
    tokens: list[TokenInfo],
    offset: int,
    first: str = "",
) -> CompletionLogprobs:
    """The legacy logprobs object for (echoed prompt tokens, then) generated ``tokens``;
    ``offset``: characters of text before the first of them; ``first``: the text of the first
    prompt token (which has no log-probability: None, as vLLM gives)."""
    out = CompletionLogprobs()
    for t in [*(prompt or []), *tokens]:
        if t is None:
            out.tokens.append(first)
            out.token_logprobs.append(None)
            out.top_logprobs.append(None)
            out.text_offset.append(offset)
            offset += len(first)
            continue
        out.tokens.append(t.text)
        out.token_logprobs.append(t.logprob)
        out.top_logprobs.append({text: lp for _, text, lp in t.top} or {t.text: t.logprob})
        out.text_offset.append(offset)
        offset += len(t.text)
    return out
