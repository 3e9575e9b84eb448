"""``POST /v1/chat/completions``: the model's chat template, streamed or not, with logprobs
(``logprobs`` + ``top_logprobs``) and vLLM's ``prompt_logprobs`` extra."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from burnish.errors import BurnishError
from burnish.models.io import chat_text
from burnish.serve.engine import Delta, SamplingParams, TokenInfo
from burnish.serve.its import ITSService
from burnish.serve.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunk,
    ChatChunkChoice,
    ChatCompletionRequest,
    ChatLogprobs,
    ChatResponse,
    DeltaMessage,
    PromptLogprob,
    TokenLogprob,
    TopLogprob,
    UsageInfo,
    new_id,
)
from burnish.serve.serving import APIError, ChoiceResult, Serving, sse

__all__ = ["ChatServing"]


class ChatServing(Serving):
    """Chat completions; with ``its`` (an :class:`ITSService`), requests with a ``budget``
    run a search instead of plain sampling."""

    def __init__(self, *args: object, its: ITSService | None = None) -> None:
        super().__init__(*args)
        self.its = its

    def encode(self, req: ChatCompletionRequest) -> list[int]:
        try:
            text = chat_text(
                self.tokenizer, req.chat(), req.add_generation_prompt, req.continue_final_message
            )
        except BurnishError as e:
            raise APIError(400, str(e), "messages") from None
        except Exception as e:  # the template itself refused the messages (jinja errors)
            msg = f"the chat template failed on these messages: {e}"
            raise APIError(400, msg, "messages") from None
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def params(self, req: ChatCompletionRequest, prompt: list[int]) -> SamplingParams:
        if req.top_logprobs is not None and not req.logprobs:
            raise APIError(400, "top_logprobs needs logprobs: true", "top_logprobs")
        logprobs = (req.top_logprobs or 0) if req.logprobs else None
        return self.sampling(req, prompt, req.token_limit(), logprobs, req.prompt_logprobs)

    def start(self, req: ChatCompletionRequest) -> tuple[list[int], list]:
        self.check_model(req.model)
        prompt = self.encode(req)
        return prompt, self.submit([prompt], [self.params(req, prompt)])

    async def complete(self, req: ChatCompletionRequest, disconnected: Callable) -> ChatResponse:
        if req.budget is not None:
            prompt, algorithm = self._search_checks(req)
            text, record = await self._search(req, algorithm, disconnected)
            message = AssistantMessage(content=text)
            return ChatResponse(
                id=new_id("chatcmpl"),
                model=self.model_name,
                choices=[ChatChoice(index=0, message=message, finish_reason="stop")],
                usage=_usage(prompt, record["tokens"]["generated"]),
                its=record,
            )
        prompt, streams = self.start(req)
        results = [ChoiceResult() for _ in range(req.n)]
        prompt_infos = None
        async for _, ev in self.events(streams, disconnected):
            if isinstance(ev, Delta):
                results[ev.index].add(ev)
            else:
                prompt_infos = ev
        choices = [
            ChatChoice(
                index=j,
                message=AssistantMessage(content=r.text),
                logprobs=_logprobs(r.tokens) if req.logprobs else None,
                finish_reason=r.finish_reason,
                stop_reason=r.stop_reason,
            )
            for j, r in enumerate(results)
        ]
        return ChatResponse(
            id=new_id("chatcmpl"),
            model=self.model_name,
            choices=choices,
            usage=_usage(prompt, sum(r.count for r in results)),
            prompt_logprobs=_prompt_logprobs(prompt, prompt_infos, self.tokenizer)
            if req.prompt_logprobs is not None
            else None,
        )

    def stream(self, req: ChatCompletionRequest, disconnected: Callable) -> AsyncIterator[str]:
        """Check and queue the request (APIError now), then return its SSE chunks."""
        if req.budget is not None:
            prompt, algorithm = self._search_checks(req)
            return self._search_chunks(req, prompt, algorithm, disconnected)
        prompt, streams = self.start(req)
        return self._chunks(req, prompt, streams, disconnected)

    # ---- inference-time scaling ---------------------------------------------------------
    def _search_checks(self, req: ChatCompletionRequest) -> tuple[list[int], str]:
        self.check_model(req.model)
        if self.its is None:
            raise APIError(400, "this server runs no searches (budget is not accepted)", "budget")
        if len(req.messages) != 1 or req.messages[0].role != "user":
            raise APIError(400, "a search (budget) takes one user message", "messages")
        if req.logprobs or req.prompt_logprobs is not None or req.stop:
            raise APIError(400, "a search (budget) takes no logprobs or stop", "budget")
        prompt = self.encode(req)
        self.check_request(prompt, None, 1)
        try:
            algorithm = self.its.check(req.budget, req.its_algorithm)
        except BurnishError as e:
            raise APIError(400, str(e), "its_algorithm") from None
        return prompt, algorithm

    async def _search(self, req: ChatCompletionRequest, algorithm: str, disconnected: Callable):
        """Run the search within the request timeout, cancelled if the client goes away."""
        task = asyncio.create_task(
            self.its.search(
                req.messages[0].text(), req.budget, algorithm, req.temperature, req.seed
            )
        )
        try:
            async with asyncio.timeout(self.limits.request_timeout):
                while not task.done():
                    await asyncio.wait({task}, timeout=0.1)
                    if not task.done() and await disconnected():
                        raise asyncio.CancelledError("client disconnected")
            return task.result()
        except TimeoutError:
            limit = self.limits.request_timeout
            raise APIError(503, f"the search ran past this server's {limit:g} s limit") from None
        except BurnishError as e:
            raise APIError(400, str(e)) from None
        finally:
            task.cancel()

    async def _search_chunks(self, req, prompt, algorithm, disconnected) -> AsyncIterator[str]:
        rid, name = new_id("chatcmpl"), self.model_name
        try:
            first = ChatChunkChoice(index=0, delta=DeltaMessage(role="assistant", content=""))
            yield sse(ChatChunk(id=rid, model=name, choices=[first]))
            text, record = await self._search(req, algorithm, disconnected)
            usage = _usage(prompt, record["tokens"]["generated"])
            last = ChatChunkChoice(index=0, delta=DeltaMessage(content=text), finish_reason="stop")
            yield sse(ChatChunk(id=rid, model=name, choices=[last], its=record))
            if req.stream_options and req.stream_options.include_usage:
                yield sse(ChatChunk(id=rid, model=name, choices=[], usage=usage))
        except APIError as e:
            yield sse(e.body())
        yield "data: [DONE]\n\n"

    async def _chunks(self, req, prompt, streams, disconnected) -> AsyncIterator[str]:
        rid, generated, name = new_id("chatcmpl"), 0, self.model_name
        try:
            for j in range(req.n):
                first = ChatChunkChoice(index=j, delta=DeltaMessage(role="assistant", content=""))
                yield sse(ChatChunk(id=rid, model=name, choices=[first]))
            async for _, ev in self.events(streams, disconnected):
                if not isinstance(ev, Delta):
                    continue  # prompt log-probs are not streamed
                generated += ev.count
                choice = ChatChunkChoice(
                    index=ev.index,
                    delta=DeltaMessage(content=ev.text),
                    logprobs=_logprobs(list(ev.tokens)) if req.logprobs else None,
                    finish_reason=ev.finish_reason,
                    stop_reason=ev.stop_reason,
                )
                yield sse(ChatChunk(id=rid, model=name, choices=[choice]))
            if req.stream_options and req.stream_options.include_usage:
                yield sse(
                    ChatChunk(id=rid, model=name, choices=[], usage=_usage(prompt, generated))
                )
        except APIError as e:
            yield sse(e.body())
        yield "data: [DONE]\n\n"


def _usage(prompt: list[int], generated: int) -> UsageInfo:
    return UsageInfo(
        prompt_tokens=len(prompt),
        completion_tokens=generated,
        total_tokens=len(prompt) + generated,
    )


def _logprobs(tokens: list[TokenInfo]) -> ChatLogprobs:
    return ChatLogprobs(
        content=[
            TokenLogprob(
                token=t.text,
                logprob=t.logprob,
                bytes=list(t.text.encode()),
                top_logprobs=[
                    TopLogprob(token=text, logprob=lp, bytes=list(text.encode()))
                    for _, text, lp in t.top
                ],
            )
            for t in tokens
        ]
    )


def _prompt_logprobs(prompt: list[int], infos: list | None, tokenizer) -> list:
    """vLLM's shape: None for the first token, then ``{token id: {logprob, rank,
    decoded_token}}`` with the prompt's own token and the top alternatives."""
    out: list = []
    for t in infos or [None] * len(prompt):
        if t is None:
            out.append(None)
            continue
        entry = {
            str(i): PromptLogprob(logprob=lp, rank=r + 1, decoded_token=text)
            for r, (i, text, lp) in enumerate(t.top)
        }
        entry[str(t.id)] = PromptLogprob(logprob=t.logprob, rank=t.rank, decoded_token=t.text)
        out.append(entry)
    return out
