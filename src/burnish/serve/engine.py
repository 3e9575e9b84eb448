"""The serving engine: continuous batching of generation requests on an in-process HF model.

One worker thread owns the model. Between two decode steps it admits waiting requests (their
prompts are prefilled together, each request's ``n`` choices then share the prompt's row) and
drops finished or cancelled ones, so requests join and leave at step granularity; every live
choice advances by one token per step. Each choice has its own KV row: rows are kept
left-padded in a batch cache with an attention mask and per-row positions (as
:mod:`burnish.scaling.hf_engine` does), so a row sees exactly its own prefix.

A newly admitted cohort is merged into the running batch (KV rows left-padded to a common
length), so one forward pass serves every request: the plain (fp) cache by concatenating its
tensors (dropping columns that are padding in every row), a quantized cache
(``kv_cache="kivi" | "squat" | ...``) through :meth:`QuantizedKVCache.absorb`, which keeps
each row's own codes, statistics and query subspace.

The asyncio side talks to the thread through :class:`GenerationStream`: ``submit`` queues a
request and returns its stream; the thread pushes events into it with
``loop.call_soon_threadsafe``; ``cancel`` (a client gone, a timeout) drops the request at the
next step boundary.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase
from transformers.cache_utils import DummyLayer

from burnish.data.packing import left_pad_prompts, left_pad_tensor
from burnish.errors import BurnishError, ConfigError
from burnish.kvcache.attention import disable_kv_attention, enable_kv_attention
from burnish.kvcache.registry import build_kv_cache
from burnish.serve.sampling import sample_rows, top_logprobs

__all__ = [
    "BATCH_BUCKETS",
    "Delta",
    "EngineClosedError",
    "EngineStats",
    "GenerationStream",
    "QueueFullError",
    "SamplingParams",
    "ServeEngine",
    "TokenInfo",
]

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)  # decode batch-size histogram buckets


class QueueFullError(BurnishError):
    """The engine's waiting queue is full (the server answers 429)."""


class EngineClosedError(BurnishError):
    """The engine was closed (the server answers 503)."""


@dataclass(frozen=True)
class SamplingParams:
    """What to generate for one request (checked by the protocol layer).

    Attributes:
        max_tokens: tokens to generate at most per choice.
        temperature: 0 is greedy. top_p: nucleus mass (1 keeps all tokens).
        n: choices per prompt. stop: strings that end a choice (not included in its text).
        seed: same seed, same output (None: a fresh random seed).
        logprobs: per generated token, the chosen token's log-probability plus this many
            alternatives (None: no log-probabilities).
        prompt_logprobs: the same for every prompt token after the first (None: none).
        ignore_eos: keep generating past end-of-sequence tokens.
    """

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    ignore_eos: bool = False


@dataclass(frozen=True)
class TokenInfo:
    """One token with its log-probability and the top alternatives ``(id, text, logprob)``."""

    id: int
    text: str
    logprob: float
    rank: int = 1  # 1 + the number of tokens more likely than this one
    top: tuple[tuple[int, str, float], ...] = ()


@dataclass(frozen=True)
class Delta:
    """New output of choice ``index``: text (stop strings held back until decided), the new
    tokens (with log-probs if asked), and the finish reason once it is done."""

    index: int
    text: str
    tokens: tuple[TokenInfo, ...]
    finish_reason: str | None = None
    stop_reason: str | None = None  # the stop string that ended the choice
    count: int = 1  # tokens sampled (an end-of-sequence token counts, as vLLM counts it)


@dataclass
class EngineStats:
    """Counters the metrics endpoint reads (written by the worker thread only)."""

    requests: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    steps: int = 0
    forward_passes: int = 0
    running: int = 0  # choices in the batch now
    batch_counts: list[int] = field(default_factory=lambda: [0] * (len(BATCH_BUCKETS) + 1))

    def observe_batch(self, rows: int) -> None:
        self.steps += 1
        i = next((i for i, b in enumerate(BATCH_BUCKETS) if rows <= b), len(BATCH_BUCKETS))
        self.batch_counts[i] += 1


class GenerationStream:
    """The asyncio side of one request: iterate to get its events, in order: an optional
    ``list[TokenInfo | None]`` (the prompt's log-probs), then :class:`Delta` s until every
    choice has finished. An engine failure is raised from the iteration."""

    def __init__(self, loop: asyncio.AbstractEventLoop, prompt: list[int], params: SamplingParams):
        self.loop, self.prompt, self.params = loop, prompt, params
        self.queue: asyncio.Queue = asyncio.Queue()
        self.cancelled = False

    def cancel(self) -> None:
        """Stop generating for this request at the next step boundary (idempotent)."""
        self.cancelled = True

    def push(self, event: object) -> None:  # worker thread
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    async def __aiter__(self) -> AsyncIterator[object]:
        remaining = self.params.n
        while remaining:
            event = await self.queue.get()
            if isinstance(event, BaseException):
                raise event
            if isinstance(event, Delta) and event.finish_reason is not None:
                remaining -= 1
            yield event


@dataclass
class _Choice:
    """One choice of a request: its tokens, text, sampler and how much text was sent."""

    stream: GenerationStream
    index: int
    generator: torch.Generator
    tokens: list[int] = field(default_factory=list)
    sent: int = 0  # characters of the text already sent
    done: bool = False


@dataclass
class _Cohort:
    """Rows decoded together: a batch cache, mask [R, L] (1 = real token), positions [R] of
    the next token, next-token logits [R, V] (fp32), and the choice of each row."""

    cache: object
    mask: torch.Tensor
    pos: torch.Tensor
    logits: torch.Tensor
    choices: list[_Choice]
    quantized: bool


class ServeEngine:
    """Continuous-batching generation over ``model`` (see the module docstring).

    Args:
        model, tokenizer: the model served.
        kv_cache: None / "none" for the plain cache, or a registered KV cache name.
        kv_bits: code width of a quantized cache.
        max_batch: choices decoded together at most (more wait in the queue).
        max_queue: requests waiting at most (``submit`` raises QueueFullError beyond).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        kv_cache: str | None = None,
        kv_bits: int = 2,
        max_batch: int = 64,
        max_queue: int = 256,
    ) -> None:
        if max_batch < 1 or max_queue < 1:
            raise ConfigError(f"max_batch ({max_batch}) and max_queue ({max_queue}) must be >= 1")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.device = next(model.parameters()).device
        self.kv_cache = None if kv_cache in (None, "none") else kv_cache
        self.kv_bits, self.max_batch, self.max_queue = kv_bits, max_batch, max_queue
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.eos = _eos_ids(model, tokenizer)
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 2**31)
        self.stats = EngineStats()
        self._previous_attn: str | None = None
        if self.kv_cache is not None:  # validate the options once; caches come per cohort
            build_kv_cache(self.kv_cache, model, bits=kv_bits).restore_attention()
            self._previous_attn = enable_kv_attention(model)
        self._waiting: deque[GenerationStream] = deque()
        self._batch: _Cohort | None = None  # every admitted cohort is merged into it
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="burnish-serve-engine", daemon=True)
        self._thread.start()

    # ---- the asyncio side ---------------------------------------------------------------
    def submit(self, prompt: list[int], params: SamplingParams) -> GenerationStream:
        """Queue a request (call from the event loop); QueueFullError when the queue is full."""
        stream = GenerationStream(asyncio.get_running_loop(), prompt, params)
        with self._wake:
            if self._stopping:
                raise EngineClosedError("the engine is shut down; no new requests are taken")
            if len(self._waiting) >= self.max_queue:
                raise QueueFullError(
                    f"{len(self._waiting)} requests are already waiting (the limit); retry later"
                )
            self._waiting.append(stream)
            self._wake.notify()
        return stream

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def close(self) -> None:
        """Stop the worker (requests still running get an error) and restore the model."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=30)
        if self._previous_attn is not None:
            disable_kv_attention(self.model, self._previous_attn)
            self._previous_attn = None

    # ---- the worker thread --------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._stopping or self._waiting or self._batch):
                    self._wake.wait()
                if self._stopping:
                    break
                admitted = self._take_admissible()
            try:
                with torch.no_grad():
                    if admitted:
                        self._admit(admitted)
                    if self._batch is not None:
                        self._step(self._batch)
            except Exception as e:  # a model failure fails the requests in flight, not the server
                self._fail_all(admitted, e)
        with self._wake:
            waiting, self._waiting = list(self._waiting), deque()
        self._fail_all(waiting, EngineClosedError("the server is shutting down"))

    def _take_admissible(self) -> list[GenerationStream]:
        """Waiting requests that fit in the batch (FIFO; cancelled ones dropped)."""
        free = self.max_batch - self._running()
        taken: list[GenerationStream] = []
        while self._waiting:
            head = self._waiting[0]
            if head.cancelled:
                self._waiting.popleft()
                continue
            if head.params.n > free and (taken or self._batch):
                break
            taken.append(self._waiting.popleft())
            free -= head.params.n
        return taken

    def _running(self) -> int:
        return 0 if self._batch is None else len(self._batch.choices)

    def _fail_all(self, extra: list[GenerationStream], error: BaseException) -> None:
        batch = self._batch.choices if self._batch is not None else []
        streams = {id(c.stream): c.stream for c in batch}
        streams.update({id(s): s for s in extra})
        self._batch = None
        for s in streams.values():
            s.push(error)

    def _admit(self, streams: list[GenerationStream]) -> None:
        """Prefill ``streams``' prompts together and add their choices as a cohort."""
        ids, mask = left_pad_prompts([s.prompt for s in streams], self.pad)
        longest = ids.shape[1]
        ids, mask = ids.to(self.device), mask.to(self.device)
        cache = self._new_cache()
        want_prompt = any(s.params.prompt_logprobs is not None for s in streams)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            cache=cache,
            use_cache=True,
            logits_to_keep=0 if want_prompt else 1,
        )
        self.stats.forward_passes += 1
        logits = out.logits.float()  # [k, L or 1, V]
        for r, s in enumerate(streams):
            self.stats.requests += 1
            self.stats.prompt_tokens += len(s.prompt)
            if s.params.prompt_logprobs is not None:
                s.push(self._prompt_logprobs(logits[r, longest - len(s.prompt) :], s))
        rows = [r for r, s in enumerate(streams) for _ in range(s.params.n)]
        index = torch.tensor(rows, device=self.device)
        if rows != list(range(len(streams))):
            cache.batch_select_indices(index)
        choices = [
            _Choice(s, i, _generator(s.params.seed, i)) for s in streams for i in range(s.params.n)
        ]
        quantized = self.kv_cache is not None
        cohort = _Cohort(
            cache, mask[index], mask.sum(-1)[index], logits[index, -1], choices, quantized
        )
        if self._batch is not None:
            cohort = _merge(self._batch, cohort)
        self._batch = _trim(cohort)
        self.stats.running = self._running()

    def _new_cache(self) -> object:
        if self.kv_cache is None:
            return DynamicCache()  # full layers everywhere, so rows can be merged and padded
        return build_kv_cache(self.kv_cache, self.model, bits=self.kv_bits)

    def _prompt_logprobs(self, logits: torch.Tensor, s: GenerationStream) -> list:
        """``[None, TokenInfo, ...]`` for prompt tokens from the prefill's logits [L, V]."""
        k = int(s.params.prompt_logprobs or 0)
        lp = torch.log_softmax(logits[:-1], -1)  # [L-1, V]: predicts tokens 1..L-1
        target = torch.tensor(s.prompt[1:], device=lp.device)
        chosen, ids, values = top_logprobs(lp, target, k)
        ranks = (lp > chosen[:, None]).sum(-1) + 1
        return [None] + [
            self._info(t, float(chosen[j]), int(ranks[j]), ids[j], values[j])
            for j, t in enumerate(s.prompt[1:])
        ]

    def _info(
        self, token: int, logprob: float, rank: int, ids: torch.Tensor, values: torch.Tensor
    ) -> TokenInfo:
        decode = self.tokenizer.decode
        top = tuple(
            (int(i), decode([int(i)]), float(v))
            for i, v in zip(ids.tolist(), values.tolist(), strict=True)
        )
        return TokenInfo(token, decode([token]), logprob, rank, top)

    def _step(self, cohort: _Cohort) -> None:
        """Sample one token for every row, report it, drop finished rows, feed the rest."""
        choices = cohort.choices
        self.stats.observe_batch(len(choices))
        params = [c.stream.params for c in choices]
        temps = torch.tensor([p.temperature for p in params], device=self.device)
        top_p = torch.tensor([p.top_p for p in params], device=self.device)
        uniform = torch.cat([torch.rand(1, generator=c.generator) for c in choices])
        tokens = sample_rows(cohort.logits, temps, top_p, uniform.to(self.device))
        k = max((p.logprobs for p in params if p.logprobs is not None), default=None)
        infos: list[TokenInfo | None] = [None] * len(choices)
        if k is not None:
            lp = torch.log_softmax(cohort.logits, -1)  # [R, V]
            chosen, ids, values = top_logprobs(lp, tokens, k)
            ranks = (lp > chosen[:, None]).sum(-1) + 1
            for b, p in enumerate(params):
                if p.logprobs is not None:
                    n = p.logprobs
                    infos[b] = self._info(
                        int(tokens[b]), float(chosen[b]), int(ranks[b]), ids[b, :n], values[b, :n]
                    )
        for b, (c, tok) in enumerate(zip(choices, tokens.tolist(), strict=True)):
            if not c.stream.cancelled:
                self._advance(c, tok, infos[b])
        keep = [b for b, c in enumerate(choices) if not (c.done or c.stream.cancelled)]
        if not keep:
            self._batch = None
            self.stats.running = 0
            return
        index = torch.tensor(keep, device=self.device)
        if len(keep) < len(choices):
            cohort.cache.batch_select_indices(index)
            cohort.mask, cohort.pos = cohort.mask[index], cohort.pos[index]
            cohort.choices = [choices[b] for b in keep]
            tokens = tokens[index]
            _trim(cohort)
        self.stats.running = self._running()
        cohort.mask = torch.cat([cohort.mask, torch.ones_like(cohort.mask[:, :1])], dim=1)
        out = self.model(
            input_ids=tokens[:, None],
            attention_mask=cohort.mask,
            position_ids=cohort.pos[:, None],
            cache=cohort.cache,
            use_cache=True,
        )
        self.stats.forward_passes += 1
        cohort.pos = cohort.pos + 1
        cohort.logits = out.logits[:, -1].float()

    def _advance(self, c: _Choice, token: int, info: TokenInfo | None) -> None:
        """Append ``token`` to choice ``c``, decide whether it is finished, send its delta."""
        p = c.stream.params
        self.stats.generation_tokens += 1
        reason = None
        if token in self.eos and not p.ignore_eos:
            reason = "stop"
        else:
            c.tokens.append(token)
        text = self.tokenizer.decode(c.tokens, skip_special_tokens=True)
        hit = _find_stop(text, p.stop, c.sent)
        if hit is not None:
            text, reason = text[: hit[0]], "stop"
        elif reason is None and (
            len(c.tokens) >= p.max_tokens or len(c.stream.prompt) + len(c.tokens) >= self.context
        ):
            reason = "length"
        end = len(text) if reason is not None else _safe_end(text, p.stop)
        delta = text[c.sent : max(end, c.sent)]
        c.sent = max(end, c.sent)
        c.done = reason is not None
        tokens = (info,) if info is not None else ()
        stop = hit[1] if hit is not None else None
        c.stream.push(Delta(c.index, delta, tokens, reason, stop))


def _merge(a: _Cohort, b: _Cohort) -> _Cohort:
    """One cohort with ``a``'s rows then ``b``'s, KV and masks left-padded to one length (fp:
    columns that are padding in every row dropped)."""
    length = max(a.mask.shape[1], b.mask.shape[1])
    mask = torch.cat([left_pad_tensor(a.mask, length, 1), left_pad_tensor(b.mask, length, 1)])
    pos, logits = torch.cat([a.pos, b.pos]), torch.cat([a.logits, b.logits])
    if a.quantized:
        a.cache.absorb(b.cache)
        return _Cohort(a.cache, mask, pos, logits, a.choices + b.choices, True)
    keep = mask.any(0)
    cache = DynamicCache()
    for i, (la, lb) in enumerate(zip(a.cache.layers, b.cache.layers, strict=True)):
        if isinstance(la, DummyLayer):  # a skipped attention block (Hopscotch) stores nothing
            cache.layers.append(DummyLayer())
            continue
        k = torch.cat([left_pad_tensor(la.keys, length, 2), left_pad_tensor(lb.keys, length, 2)])
        v = torch.cat(
            [left_pad_tensor(la.values, length, 2), left_pad_tensor(lb.values, length, 2)]
        )
        cache.update(k[:, :, keep], v[:, :, keep], i)
    return _Cohort(cache, mask[:, keep], pos, logits, a.choices + b.choices, False)


def _trim(cohort: _Cohort) -> _Cohort:
    """Drop the oldest columns that are padding in every row (left behind by rows that left,
    or by a long row's merge), from the mask and the cache; returns ``cohort``."""
    real = cohort.mask.any(0)
    n = int(real.int().argmax()) if bool(real.any()) else 0
    if n == 0:
        return cohort
    cohort.mask = cohort.mask[:, n:]
    if cohort.quantized:
        cohort.cache.trim_left(n)
    else:
        for layer in cohort.cache.layers:
            if isinstance(layer, DummyLayer):
                continue
            layer.keys, layer.values = layer.keys[:, :, n:], layer.values[:, :, n:]
    return cohort


def _find_stop(text: str, stops: tuple[str, ...], sent: int) -> tuple[int, str] | None:
    """``(index, stop)`` of the earliest stop string in ``text`` (only text past what was
    sent, less the longest stop, can hold a new match), or None."""
    if not stops:
        return None
    start = max(0, sent - max(len(s) for s in stops))
    hits = [(i, s) for s in stops if (i := text.find(s, start)) >= 0]
    return min(hits) if hits else None


def _safe_end(text: str, stops: tuple[str, ...]) -> int:
    """How much of ``text`` can be sent now: not a trailing partial character (U+FFFD from an
    incomplete byte sequence) nor a suffix that may be the start of a stop string."""
    end = len(text)
    while end and text[end - 1] == "\ufffd":
        end -= 1
    for s in stops:
        for n in range(min(len(s) - 1, end), 0, -1):
            if text[end - n : end] == s[:n]:
                end -= n
                break
    return end


def _generator(seed: int | None, index: int) -> torch.Generator:
    """The sampler of choice ``index``: seeded from ``(seed, index)``, or fresh randomness."""
    g = torch.Generator()
    if seed is None:
        g.manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
    else:
        g.manual_seed((seed * 1_000_003 + index) % (2**63))
    return g


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """End-of-sequence ids: the generation config's (int or list) and the tokenizer's."""
    ids: set[int] = set()
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update([gen] if isinstance(gen, int) else list(gen or []))
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)
