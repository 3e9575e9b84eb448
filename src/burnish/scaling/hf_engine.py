"""In-process Hugging Face engine with KV-cache forking.

All live particles of all problems that ask in the same event-loop turn are decoded together,
one forward pass per token, each row stopping at the step delimiter or EOS. The KV cache of a
particle is a row of a shared batch cache; a resampled particle keeps pointing at its
ancestor's row, and the next extension gathers rows by ancestor index (``index_select`` on the
batch dimension, as ``DynamicCache.reorder_cache`` does, into a fresh cache so older particles
that still point at the old rows stay valid). So each step encodes only the new tokens.

Rows that finish their step early keep being fed a pad token whose attention-mask entry is 0
(a masked "hole"), and positions come from the count of real tokens, so every row sees exactly
its own prefix.

``kv_mode`` says how rows are found for the particles of an extension (all three give the same
particles for the same seeds; they differ in what they encode, counted in ``Problem.usage``):

- ``"fork"`` (default): gather rows by ancestor index, so a row may serve several particles.
- ``"reprefill"``: what an engine with one KV cache per request but no fork / copy-on-write
  does. A row can be continued once: the first particle (in batch order) that extends from a
  row takes it over in place; every other particle pointing at a row already taken (a
  duplicate made by resampling or branching, or an old particle whose row a child has since
  continued) re-encodes its whole prefix (prompt + generated tokens) into a fresh row. The
  ``n`` particles of one ``start`` share the prompt's row (the prompt is encoded once, as a
  server shares it among ``n`` parallel samples); that sharing is not counted as a fork.
- ``"none"``: no state between steps; every particle's whole prefix is re-encoded at each
  extension (what a stateless OpenAI-server client makes the server do without a prefix
  cache); ``start`` encodes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase
from transformers.cache_utils import DummyLayer

from burnish.data.packing import left_pad_prompts, left_pad_tensor
from burnish.errors import ConfigError
from burnish.models.io import chat_text
from burnish.scaling.batching import MicroBatcher
from burnish.scaling.engine import StepConfig, finish_reason
from burnish.scaling.particles import Particle, Problem

__all__ = ["KV_MODES", "HFEngine", "KVMode", "sample_tokens"]

KVMode = Literal["fork", "reprefill", "none"]
KV_MODES: tuple[str, ...] = get_args(KVMode)


@dataclass
class _KV:
    """A batch of cached rows. cache: [R, H, L, D] per layer; mask: [R, L] (1 = real token);
    pos: [R] position of the next token; logits: [R, V] next-token logits.

    For ``kv_mode="reprefill"``: ``shared`` marks a start's prompt rows (any number of
    particles may continue them); ``taken`` holds the rows some particle already continued.
    """

    cache: DynamicCache
    mask: torch.Tensor
    pos: torch.Tensor
    logits: torch.Tensor
    shared: bool = False
    taken: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class _Handle:
    """A particle's place in the engine: row ``row`` of ``kv`` (None before the first step
    of a "none" engine), after the prompt's token ids ``prompt``."""

    kv: _KV | None
    row: int
    prompt: tuple[int, ...]


@dataclass(frozen=True)
class _Start:
    """A request for ``n`` fresh particles of ``problem``."""

    problem: Problem
    n: int


@dataclass(frozen=True)
class _Extend:
    """A request to extend ``particles`` of ``problem`` by one step at ``temperature``."""

    problem: Problem
    particles: list[Particle]
    temperature: float


@dataclass
class _Step:
    """One decoded step per row: its tokens and their log-probabilities, and whether it
    ended at EOS or at the step delimiter."""

    tokens: list[list[int]]
    logprobs: list[list[float]]
    eos: list[bool]
    delimiter: list[bool]


def sample_tokens(
    logits: torch.Tensor, temperature: torch.Tensor, uniform: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse-CDF sampling from softmax(logits / T) per row; T == 0 is argmax.

    logits [R, V], temperature [R], uniform [R] in [0, 1) -> (tokens [R], log p [R]) with
    log p the policy's own (temperature 1) log-probability of the chosen token.
    """
    greedy = temperature <= 0
    t = torch.where(greedy, torch.ones_like(temperature), temperature)
    probs = torch.softmax(logits / t[:, None], dim=-1)
    cdf = probs.cumsum(-1)
    drawn = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None]).squeeze(1)
    tokens = torch.where(greedy, logits.argmax(-1), drawn.clamp(max=logits.shape[-1] - 1))
    logp = torch.log_softmax(logits, -1).gather(1, tokens[:, None]).squeeze(1)
    return tokens, logp


class HFEngine:
    """Engine over an in-process HF causal LM (see module docstring).

    Args:
        model, tokenizer: the policy.
        step: step delimiter and finishing rules.
        kv_mode: "fork" (default) forks KV rows; "reprefill" keeps a row per particle but
            re-encodes the prefix of every particle whose row another one already continued;
            "none" re-encodes every prefix each step (see the module docstring).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        step: StepConfig | None = None,
        kv_mode: KVMode = "fork",
    ) -> None:
        if kv_mode not in KV_MODES:
            raise ConfigError(f"unknown kv_mode {kv_mode!r}; choose one of {', '.join(KV_MODES)}")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.step = step or StepConfig()
        self.kv_mode = kv_mode
        self.device = next(model.parameters()).device
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        self.stop_ids = self._stop_ids()
        self._batcher = MicroBatcher(self._serve)
        self.forward_passes = 0

    def _stop_ids(self) -> torch.Tensor:
        """[V] bool: tokens whose text contains the delimiter (they end a step)."""
        vocab = self.model.config.vocab_size
        stop = torch.zeros(vocab, dtype=torch.bool)
        for i in range(min(vocab, len(self.tokenizer))):
            if self.step.delimiter in self.tokenizer.decode([i]):
                stop[i] = True
        return stop.to(self.device)

    def prompt_ids(self, prompt: str) -> list[int]:
        text = chat_text(self.tokenizer, [{"role": "user", "content": prompt}], True)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def start(self, problem: Problem, n: int) -> list[Particle]:
        return await self._batcher.submit(_Start(problem, n))

    async def extend(
        self, problem: Problem, particles: Sequence[Particle], temperature: float
    ) -> list[Particle]:
        if all(p.finished for p in particles):
            return list(particles)
        return await self._batcher.submit(_Extend(problem, list(particles), temperature))

    def next_token_logits(self, particle: Particle) -> torch.Tensor:
        """[V] logits the engine holds for the particle's next token (for tests; a "none"
        engine holds none for a particle fresh from ``start``)."""
        return particle.handle.kv.logits[particle.handle.row]

    # ---- batched work ---------------------------------------------------------------------

    @torch.no_grad()
    def _serve(self, requests: list[_Start | _Extend]) -> list[list[Particle]]:
        out: list = [None] * len(requests)
        starts = [i for i, r in enumerate(requests) if isinstance(r, _Start)]
        if starts:
            for i, res in zip(starts, self._start([requests[i] for i in starts]), strict=True):
                out[i] = res
        extends = [i for i, r in enumerate(requests) if isinstance(r, _Extend)]
        if extends:
            for i, res in zip(extends, self._extend([requests[i] for i in extends]), strict=True):
                out[i] = res
        return out

    def _start(self, requests: list[_Start]) -> list[list[Particle]]:
        """n particles per request sharing one prompt row (no row at all for "none")."""
        ids = [self.prompt_ids(req.problem.prompt) for req in requests]
        kv = None if self.kv_mode == "none" else self._prefill(ids)
        if kv is not None:
            kv.shared = True
        out = []
        for row, (req, seq) in enumerate(zip(requests, ids, strict=True)):
            if kv is not None:
                req.problem.usage.prefill += len(seq)
            handle = _Handle(kv, row, tuple(seq))
            out.append([Particle(uid=req.problem.next_uid(), handle=handle) for _ in range(req.n)])
        return out

    def _prefill(self, seqs: list[list[int]]) -> _KV:
        """Encode left-padded sequences into a fresh cache. seqs: R lists -> _KV with R rows."""
        ids, mask = left_pad_prompts(seqs, self.pad)
        ids, mask = ids.to(self.device), mask.to(self.device)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.forward_passes += 1
        return _KV(cache, mask, mask.sum(-1), out.logits[:, -1].float())

    def _gather(self, handles: list[_Handle]) -> _KV:
        """One batch cache holding the rows ``handles`` point at, in order (rows may repeat)."""
        kvs: dict[int, _KV] = {}
        for h in handles:
            kvs.setdefault(id(h.kv), h.kv)
        offsets, off = {}, 0
        for key, kv in kvs.items():
            offsets[key] = off
            off += kv.mask.shape[0]
        index = torch.tensor([offsets[id(h.kv)] + h.row for h in handles], device=self.device)
        parts = list(kvs.values())
        longest = max(kv.mask.shape[1] for kv in parts)
        mask = torch.cat([left_pad_tensor(kv.mask, longest, 1) for kv in parts])[index]
        keep = mask.any(0)  # drop columns that are padding in every kept row
        mask = mask[:, keep]
        cache = DynamicCache(config=self.model.config)
        for layer in range(len(parts[0].cache.layers)):
            if isinstance(parts[0].cache.layers[layer], DummyLayer):  # skipped (Hopscotch)
                cache.layers[layer] = DummyLayer()
                continue
            ks = [left_pad_tensor(kv.cache.layers[layer].keys, longest, 2) for kv in parts]
            vs = [left_pad_tensor(kv.cache.layers[layer].values, longest, 2) for kv in parts]
            k = torch.cat(ks).index_select(0, index)[:, :, keep]
            v = torch.cat(vs).index_select(0, index)[:, :, keep]
            cache.update(k, v, layer)
        pos = torch.cat([kv.pos for kv in parts])[index]
        logits = torch.cat([kv.logits for kv in parts])[index]
        return _KV(cache, mask, pos, logits)

    def _extend(self, requests: list[_Extend]) -> list[list[Particle]]:
        rows: list[tuple[int, int]] = []  # (request, particle index) of each live row
        for r, req in enumerate(requests):
            rows += [(r, j) for j, p in enumerate(req.particles) if not p.finished]
        particles = [requests[r].particles[j] for r, j in rows]
        problems = [requests[r].problem for r, _ in rows]
        for p, problem in zip(particles, problems, strict=True):
            problem.usage.reencode += len(p.handle.prompt) + len(p.token_ids)
            problem.usage.policy_calls += 1
        kv = self._rows(particles, problems)
        step = self._decode(kv, requests, rows)
        results = [list(req.particles) for req in requests]
        for b, (r, j) in enumerate(rows):
            results[r][j] = self._child(particles[b], problems[b], step, b, kv)
        return results

    def _child(self, p: Particle, problem: Problem, step: _Step, b: int, kv: _KV) -> Particle:
        """The particle ``p`` grown by row ``b``'s decoded step (now row ``b`` of ``kv``)."""
        toks = step.tokens[b]
        text_toks = toks[:-1] if step.eos[b] else toks
        text = self.tokenizer.decode(text_toks, skip_special_tokens=True)
        line = text.split(self.step.delimiter)[0] if step.delimiter[b] else text
        steps = (*p.steps, line)
        reason = finish_reason(line, len(steps), step.eos[b], step.delimiter[b], self.step)
        logps = step.logprobs[b]
        return p.child(
            problem.next_uid(),
            steps=steps,
            token_ids=p.token_ids + tuple(toks),
            step_logprobs=(*p.step_logprobs, sum(logps) / max(1, len(logps))),
            finished=reason is not None,
            finish_reason=reason,
            handle=_Handle(kv, b, p.handle.prompt),
        )

    def _rows(self, particles: list[Particle], problems: list[Problem]) -> _KV:
        """One batch cache with row b for ``particles[b]``, built as ``kv_mode`` says."""
        if self.kv_mode == "fork":
            return self._gather([p.handle for p in particles])
        if self.kv_mode == "none":
            return self._encode_prefixes(particles, problems)
        fresh = _rows_to_reprefill(particles)
        handles = [p.handle for p in particles]
        if fresh:
            kv = self._encode_prefixes([particles[b] for b in fresh], [problems[b] for b in fresh])
            for row, b in enumerate(fresh):
                handles[b] = _Handle(kv, row, handles[b].prompt)
        return self._gather(handles)  # each non-shared source row is used once: no fork

    def _encode_prefixes(self, particles: list[Particle], problems: list[Problem]) -> _KV:
        """Encode each particle's whole prefix (prompt + generated) into a fresh row."""
        seqs = [list(p.handle.prompt) + list(p.token_ids) for p in particles]
        for s, problem in zip(seqs, problems, strict=True):
            problem.usage.prefill += len(s)
        return self._prefill(seqs)

    def _decode(self, kv: _KV, requests: list[_Extend], rows: list[tuple[int, int]]) -> _Step:
        """Sample one step for every row of ``kv`` (mutates it: new columns, logits)."""
        n = len(rows)
        temps = torch.tensor([float(requests[r].temperature) for r, _ in rows], device=self.device)
        by_req: dict[int, list[int]] = {}
        for b, (r, _) in enumerate(rows):
            by_req.setdefault(r, []).append(b)
        done = torch.zeros(n, dtype=torch.bool, device=self.device)
        eos_hit, delim_hit = [False] * n, [False] * n
        new_tokens: list[list[int]] = [[] for _ in range(n)]
        logps: list[list[float]] = [[] for _ in range(n)]
        for _ in range(self.step.max_step_tokens):
            uniform = torch.zeros(n, device=self.device)
            for r, bs in by_req.items():  # per-problem random stream, only while it has work
                idx = torch.tensor(bs, device=self.device)
                if not bool(done[idx].all()):
                    draw = torch.rand(len(bs), generator=requests[r].problem.sampler)
                    uniform[idx] = draw.to(self.device)
            tok, lp = sample_tokens(kv.logits, temps, uniform)
            live = ~done
            is_eos = tok == self.eos
            is_stop = self.stop_ids[tok.clamp(max=len(self.stop_ids) - 1)]
            tok_l, lp_l, eos_l, stop_l = (
                tok.tolist(),
                lp.tolist(),
                is_eos.tolist(),
                is_stop.tolist(),
            )
            for b in live.nonzero().flatten().tolist():
                new_tokens[b].append(tok_l[b])
                logps[b].append(lp_l[b])
                eos_hit[b] = eos_l[b]
                delim_hit[b] = stop_l[b] and not eos_l[b]
                usage = requests[rows[b][0]].problem.usage
                usage.generated += 1
                usage.reencode += 1
            feed = live & ~is_eos  # EOS ends the particle: no need to encode it
            done = done | is_eos | is_stop
            if bool(feed.any()):
                self._feed(kv, torch.where(feed, tok, self.pad), feed, requests, rows)
            if bool(done.all()):
                break
        return _Step(new_tokens, logps, eos_hit, delim_hit)

    def _feed(
        self,
        kv: _KV,
        tok: torch.Tensor,
        feed: torch.Tensor,
        requests: list[_Extend],
        rows: list[tuple[int, int]],
    ) -> None:
        """Append one column: real tokens where ``feed``, masked pads elsewhere."""
        kv.mask = torch.cat([kv.mask, feed.long()[:, None]], dim=1)
        out = self.model(
            input_ids=tok[:, None],
            attention_mask=kv.mask,
            position_ids=kv.pos[:, None],
            cache=kv.cache,
            use_cache=True,
        )
        self.forward_passes += 1
        kv.pos = kv.pos + feed.long()
        kv.logits = torch.where(feed[:, None], out.logits[:, -1].float(), kv.logits)
        for r, _ in rows:
            requests[r].problem.usage.padded += 1


def _rows_to_reprefill(particles: list[Particle]) -> list[int]:
    """Indices of the particles that need a fresh row under ``kv_mode="reprefill"``.

    A particle may continue its row in place unless the row is already taken (by an earlier
    particle of this batch or of an earlier extension); a start's prompt rows are shared.
    Marks the rows it hands out as taken.
    """
    fresh = []
    for b, p in enumerate(particles):
        kv, row = p.handle.kv, p.handle.row
        if kv.shared:
            continue
        if row in kv.taken:
            fresh.append(b)
        else:
            kv.taken.add(row)
    return fresh
