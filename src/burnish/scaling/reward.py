"""Reward models: score a prompt and its steps -> one score in (0, 1) per step.

- :class:`HFProcessRewardModel`: a causal LM read as a two-class process reward model in the
  style of Qwen2.5-Math-PRM: after each step the PRM input holds a step-separator token; the
  score of a step is softmax over the logits of two reserved label tokens (good, bad) at that
  separator's position, probability of "good".
- :class:`LikelihoodProcessRewardModel`: a causal LM read as a likelihood verifier: score =
  sigmoid(beta * the answer's log-likelihood so far + bias), fitted on step labels. The zoo's
  ``arith-prm`` is one (the two-class kind learned little on the zoo; see
  :mod:`burnish.zoo_build.prm`).
- :class:`OutcomeRewardModel`: any PRM asked only about the whole answer (one score).
- :class:`LogProbReward`: reward-free option, the policy's own mean token probability per
  step (recorded by the engine while sampling; costs no model call).

:func:`aggregate` turns per-step scores into one number ("last", "min", "prod"); "model"
asks the PRM to score the whole partial answer as one step.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from burnish.errors import ConfigError
from burnish.models.io import chat_text
from burnish.scaling.batching import MicroBatcher
from burnish.scaling.particles import Particle, Usage
from burnish.scaling.settings import AGGREGATIONS

__all__ = [
    "AGGREGATIONS",
    "PRM_KINDS",
    "HFProcessRewardModel",
    "LikelihoodProcessRewardModel",
    "LogProbReward",
    "OutcomeRewardModel",
    "RewardModel",
    "SeparatorRewardModel",
    "aggregate",
    "answer_logprob_sums",
    "answer_start",
    "check_tokenizer_compatible",
    "load_prm",
    "prm_input_ids",
    "score_particles",
]


@runtime_checkable
class RewardModel(Protocol):
    """Anything that scores partial answers step by step."""

    async def score(
        self,
        prompt: str,
        particles: Sequence[Particle],
        whole: bool = False,
        usage: Usage | None = None,
    ) -> list[list[float]]:
        """Per-step scores in (0, 1) of each particle (one score if ``whole``)."""
        ...


def aggregate(step_scores: Sequence[float], how: str) -> float:
    """One score from per-step scores: "last", "min", "prod" (or "model": already one score).

    An answer with no step yet scores 0.5 (no evidence either way).
    """
    if how not in AGGREGATIONS:
        raise ConfigError(f"unknown aggregation {how!r}; choose one of {', '.join(AGGREGATIONS)}")
    if not step_scores:
        return 0.5
    if how in ("last", "model"):
        return float(step_scores[-1])
    if how == "min":
        return float(min(step_scores))
    return float(math.prod(step_scores))


async def score_particles(
    reward: RewardModel,
    prompt: str,
    particles: Sequence[Particle],
    aggregation: str = "model",
    usage: Usage | None = None,
) -> list[float]:
    """One aggregated score per particle."""
    if aggregation not in AGGREGATIONS:
        aggregate([], aggregation)  # raises ConfigError
    if not particles:
        return []
    per_step = await reward.score(prompt, particles, whole=aggregation == "model", usage=usage)
    return [aggregate(s, aggregation) for s in per_step]


def prm_input_ids(
    tokenizer: PreTrainedTokenizerBase, prompt: str, steps: Sequence[str], separator: str
) -> tuple[list[int], list[int]]:
    """PRM input ids for (prompt, steps) and the positions of the step separators.

    Layout: the chat prompt with the assistant turn opened, then ``step + separator`` for each
    step. Returns ``(ids, positions)``; the score of step i is read at ``positions[i]``.
    """
    head = chat_text(tokenizer, [{"role": "user", "content": prompt}], add_generation_prompt=True)
    ids = list(tokenizer(head, add_special_tokens=False)["input_ids"])
    sep = tokenizer(separator, add_special_tokens=False)["input_ids"]
    positions = []
    for step in steps:
        ids += tokenizer(step, add_special_tokens=False)["input_ids"] + sep
        positions.append(len(ids) - 1)
    return ids, positions


def answer_start(tokenizer: PreTrainedTokenizerBase, prompt: str) -> int:
    """Index of the first answer token in :func:`prm_input_ids` (the chat header's length)."""
    return len(prm_input_ids(tokenizer, prompt, [], "")[0])


def _single_token(tokenizer: PreTrainedTokenizerBase, text: str, what: str) -> int:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ConfigError(f"PRM {what} {text!r} must be one token of the PRM tokenizer, got {ids}")
    return ids[0]


def check_tokenizer_compatible(
    policy_tokenizer: PreTrainedTokenizerBase, prm_tokenizer: PreTrainedTokenizerBase
) -> None:
    """ConfigError unless the PRM tokenizer can represent every token the policy can emit.

    The PRM re-tokenizes the policy's text, so vocabularies may differ; what must not happen
    is the policy writing text the PRM would read as unknown tokens (scores would be noise).
    """
    unk = prm_tokenizer.unk_token_id
    bad = []
    special = set(policy_tokenizer.all_special_ids)
    for i in range(len(policy_tokenizer)):
        if i in special:
            continue
        text = policy_tokenizer.decode([i])
        ids = prm_tokenizer(text, add_special_tokens=False)["input_ids"]
        if (unk is not None and unk in ids) or prm_tokenizer.decode(ids) != text:
            bad.append(text)
            if len(bad) >= 5:
                break
    if bad:
        raise ConfigError(
            f"PRM/policy tokenizer mismatch: the policy can write {bad!r}, which the PRM "
            "tokenizer cannot represent; use a PRM trained with the policy's tokenizer"
        )


class SeparatorRewardModel:
    """A causal LM that scores each step at the separator after it; what the score is comes
    from :meth:`_read` (see the two subclasses). Holds the input layout
    (:func:`prm_input_ids`), length-sorted batching, micro-batching of concurrent requests and
    a score cache.

    Args:
        model, tokenizer: the PRM (any HF causal LM).
        separator: text appended after each step; must be one token.
        max_batch_tokens: padded tokens per forward pass.
        cache_size: scored (prompt, steps) kept, so clones of one particle are scored once.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        separator: str = "\n",
        max_batch_tokens: int = 16384,
        cache_size: int = 100_000,
    ) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        self.separator = separator
        _single_token(tokenizer, separator, "separator")
        self.max_batch_tokens = max_batch_tokens
        self._cache: OrderedDict[tuple, list[float]] = OrderedDict()
        self._cache_size = cache_size
        self._header: dict[str, int] = {}  # prompt -> tokens before the answer
        self._batcher = MicroBatcher(self._serve)

    async def score(
        self,
        prompt: str,
        particles: Sequence[Particle],
        whole: bool = False,
        usage: Usage | None = None,
    ) -> list[list[float]]:
        steps = [p.steps for p in particles]
        return await self._batcher.submit((prompt, steps, whole, usage))

    def serve_in_thread(self) -> None:
        """Score on a worker thread from now on, so the caller's event loop keeps serving
        other requests while the PRM runs (what ``burnish serve`` does)."""
        self._batcher.offload = True

    def score_texts(
        self, prompt: str, steps_list: Sequence[Sequence[str]], whole: bool = False
    ) -> list[list[float]]:
        """Synchronous scoring of step lists for one prompt."""
        return self._serve([(prompt, steps_list, whole, None)])[0]

    # ---- batched work -------------------------------------------------------------------

    def _serve(self, requests: list[tuple]) -> list[list[list[float]]]:
        out: list[list[list[float] | None]] = []
        todo: dict[tuple, list[tuple[int, int]]] = {}
        for r, (prompt, steps_list, whole, _) in enumerate(requests):
            out.append([None] * len(steps_list))
            for j, steps in enumerate(steps_list):
                steps = ("\n".join(steps),) if whole and steps else tuple(steps)
                key = (prompt, steps)
                if not steps:
                    out[r][j] = []
                elif key in self._cache:
                    out[r][j] = self._cache[key]
                else:
                    todo.setdefault(key, []).append((r, j))
        keys = list(todo)
        encoded = [self._encode(k[0], k[1]) for k in keys]
        for key, (ids, *_) in zip(keys, encoded, strict=True):
            usage = requests[todo[key][0][0]][3]
            if usage is not None:
                usage.prm += len(ids)
        scores = self._forward(encoded)
        for key, s in zip(keys, scores, strict=True):
            self._remember(key, s)
            for r, j in todo[key]:
                out[r][j] = s
        return out  # type: ignore[return-value]

    def _encode(self, prompt: str, steps: Sequence[str]) -> tuple[list[int], list[int], int]:
        """(ids, separator positions, index of the first answer token)."""
        if prompt not in self._header:
            self._header[prompt] = answer_start(self.tokenizer, prompt)
        ids, positions = prm_input_ids(self.tokenizer, prompt, steps, self.separator)
        return ids, positions, self._header[prompt]

    @torch.no_grad()
    def _forward(self, encoded: list[tuple[list[int], list[int], int]]) -> list[list[float]]:
        """Scores at separator positions for each (ids, positions, start), in length-sorted
        batches."""
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
        results: list[list[float]] = [[] for _ in encoded]
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id or 0
        start = 0
        while start < len(order):
            longest = len(encoded[order[start]][0])
            end = start
            while end < len(order) and len(encoded[order[end]][0]) * (end - start + 1) <= max(
                self.max_batch_tokens, len(encoded[order[end]][0])
            ):
                longest = len(encoded[order[end]][0])
                end += 1
            rows = order[start:end]
            ids = torch.full((len(rows), longest), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for b, i in enumerate(rows):  # right padding: positions stay valid
                seq = encoded[i][0]
                ids[b, : len(seq)] = torch.tensor(seq)
                mask[b, : len(seq)] = 1
            starts = torch.tensor([encoded[i][2] for i in rows], device=device)
            ids, mask = ids.to(device), mask.to(device)
            logits = self.model(input_ids=ids, attention_mask=mask).logits
            scores = self._read(logits, ids, starts).float().cpu()  # [B, T]
            for b, i in enumerate(rows):
                results[i] = scores[b, encoded[i][1]].tolist()
            start = end
        return results

    def _read(self, logits: torch.Tensor, ids: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """Score in (0, 1) at every position [B, T] from the logits [B, T, V] of ``ids``
        [B, T] whose answers start at ``starts`` [B]."""
        raise NotImplementedError

    def _remember(self, key: tuple, scores: list[float]) -> None:
        self._cache[key] = scores
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


class HFProcessRewardModel(SeparatorRewardModel):
    """A causal LM read as a two-class PRM at step-separator positions (Qwen2.5-Math-PRM style).

    Args:
        model, tokenizer, separator, max_batch_tokens, cache_size: see
            :class:`SeparatorRewardModel`.
        good, bad: the two label tokens whose logits at a separator form the two-class head.
    """

    kind = "two_class"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        separator: str = "\n",
        good: str = "+",
        bad: str = "-",
        max_batch_tokens: int = 16384,
        cache_size: int = 100_000,
    ) -> None:
        super().__init__(model, tokenizer, separator, max_batch_tokens, cache_size)
        self.good, self.bad = good, bad
        self.label_ids = [
            _single_token(tokenizer, good, "label"),
            _single_token(tokenizer, bad, "label"),
        ]

    def card_options(self) -> dict:
        """The card's "prm" section that :func:`load_prm` rebuilds this reward model from."""
        return {"kind": self.kind, "separator": self.separator, "good": self.good, "bad": self.bad}

    def _read(self, logits: torch.Tensor, ids: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """P(good) of the two-class head at every position [B, T]."""
        return logits[..., self.label_ids].float().softmax(-1)[..., 0]


def answer_logprob_sums(
    logits: torch.Tensor, ids: torch.Tensor, starts: torch.Tensor
) -> torch.Tensor:
    """Running sum of answer-token log-probabilities [B, T].

    ``logits`` [B, T, V] of ``ids`` [B, T]; ``starts`` [B] index of each row's first answer
    token. Entry (b, t) = sum over start_b <= u <= t of log p(ids[b, u] | ids[b, :u]); zero
    before the answer starts. Works in float32; the normaliser costs one float32 [B, T, V]
    temporary (bounded by the PRM's ``max_batch_tokens``).
    """
    head = logits[:, :-1]  # [B, T-1, V] predicts ids[:, 1:]
    picked = head.gather(-1, ids[:, 1:, None])[..., 0].float()  # [B, T-1]
    token = picked - torch.logsumexp(head.float(), -1)  # [B, T-1] log-probabilities
    token = torch.cat([token.new_zeros(len(ids), 1), token], 1)  # [B, T]
    pos = torch.arange(ids.shape[1], device=ids.device)
    token = token * (pos[None, :] >= starts[:, None].clamp(min=1))
    return token.cumsum(1)


class LikelihoodProcessRewardModel(SeparatorRewardModel):
    """A causal LM read as a likelihood verifier (a generative PRM).

    Score of a partial answer after step i = ``sigmoid(beta * L_i + bias)``, L_i the sum of
    log p(token | everything before it) over the answer's tokens up to and including the
    separator after step i. A step that a good calculator would not write costs many nats
    at once, so the score falls at the step where an answer goes wrong and, the sum only
    decreasing, stays low after it. ``beta`` and ``bias`` are fitted with the model on
    step-checker labels (:mod:`burnish.zoo_build.prm`) and stored in the PRM's
    ``card.json``.
    """

    kind = "likelihood"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        separator: str = "\n",
        beta: float = 1.0,
        bias: float = 0.0,
        max_batch_tokens: int = 16384,
        cache_size: int = 100_000,
    ) -> None:
        super().__init__(model, tokenizer, separator, max_batch_tokens, cache_size)
        self.beta, self.bias = float(beta), float(bias)

    def card_options(self) -> dict:
        """The card's "prm" section that :func:`load_prm` rebuilds this reward model from."""
        return {
            "kind": self.kind,
            "separator": self.separator,
            "beta": self.beta,
            "bias": self.bias,
        }

    def _read(self, logits: torch.Tensor, ids: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.beta * answer_logprob_sums(logits, ids, starts) + self.bias)


class OutcomeRewardModel:
    """An outcome reward model: a PRM asked only about the whole answer (one score)."""

    def __init__(self, prm: RewardModel) -> None:
        self.prm = prm

    async def score(
        self,
        prompt: str,
        particles: Sequence[Particle],
        whole: bool = False,
        usage: Usage | None = None,
    ) -> list[list[float]]:
        return await self.prm.score(prompt, particles, whole=True, usage=usage)


class LogProbReward:
    """Reward-free scoring: exp(mean token log-probability) of each step under the policy.

    ``whole`` gives the step-count-weighted geometric mean over all steps. Uses the
    log-probabilities the engine recorded while sampling, so it costs no model call.
    """

    async def score(
        self,
        prompt: str,
        particles: Sequence[Particle],
        whole: bool = False,
        usage: Usage | None = None,
    ) -> list[list[float]]:
        out = []
        for p in particles:
            lps = list(p.step_logprobs)
            if any(math.isnan(x) for x in lps):
                raise ConfigError(
                    "the policy engine returned no token log-probabilities (its server ignores "
                    "`logprobs`), so --prm logprob cannot score the particles; use a PRM"
                )
            if whole and lps:
                lps = [sum(lps) / len(lps)]
            out.append([math.exp(x) for x in lps])
        return out


# The PRM kinds, by the name a card's "prm" section gives: each class is built from that
# section's other keys (its constructor's keyword arguments) and writes them back with
# ``card_options()``.
PRM_KINDS: dict[str, type[SeparatorRewardModel]] = {
    cls.kind: cls for cls in (HFProcessRewardModel, LikelihoodProcessRewardModel)
}


def load_prm(
    name_or_path: str | Path,
    device: str = "cpu",
    dtype: str = "float32",
    kind: str | None = None,
    allow_pickle: bool = False,
) -> SeparatorRewardModel:
    """Load a PRM directory or zoo name, configured by the "prm" section of its card.json.

    The section names a kind of :data:`PRM_KINDS` (``two_class`` when absent) and that
    class's options, e.g. ``{"kind": "likelihood", "separator": "\\n", "beta", "bias"}``. A
    model whose card has no "prm" section is refused (it would score noise) unless ``kind``
    names the head, which then uses that kind's defaults; ``kind`` must agree with a card
    that has one.
    """
    from burnish.models.io import load_model
    from burnish.models.zoo import resolve_model

    if kind is not None and kind not in PRM_KINDS:
        raise ConfigError(f"unknown PRM kind {kind!r}; choose one of {', '.join(PRM_KINDS)}")
    path = resolve_model(name_or_path)
    opts = _card_prm(Path(path), kind, name_or_path)
    model, tok = load_model(path, dtype=dtype, device=device, allow_pickle=allow_pickle)
    cls = PRM_KINDS[opts.pop("kind")]
    try:
        return cls(model, tok, **opts)
    except TypeError as e:
        raise ConfigError(f"{path}/card.json: bad 'prm' options for {cls.kind} ({e})") from None


def reward_model(
    prm: str | Path | None,
    device: str = "cpu",
    kind: str | None = None,
    allow_pickle: bool = False,
) -> RewardModel | None:
    """What a ``--prm`` option names: None (no reward model), ``"logprob"`` (the policy's own
    token probabilities, :class:`LogProbReward`) or a PRM directory / zoo name
    (:func:`load_prm`)."""
    if prm is None:
        return None
    if str(prm) == "logprob":
        return LogProbReward()
    return load_prm(prm, device=device, kind=kind, allow_pickle=allow_pickle)


def _card_prm(path: Path, kind: str | None, name: str | Path) -> dict:
    """The PRM options of a model's card, checked against the ``kind`` the user named."""
    card = path / "card.json"
    opts = json.loads(card.read_text()).get("prm") if card.is_file() else None
    if opts is None:
        if kind is None:
            raise ConfigError(
                f"{name}: not a process reward model (its card.json has no 'prm' section), so "
                "its scores would be noise; pass --prm-kind two_class (a '+'/'-' head at each "
                "step separator, Qwen2.5-Math-PRM style) or --prm-kind likelihood if it is one"
            )
        return {"kind": kind}
    card_kind = opts.get("kind", "two_class")
    if card_kind not in PRM_KINDS:
        raise ConfigError(
            f"{card}: unknown PRM kind {card_kind!r}; expected one of {', '.join(PRM_KINDS)}"
        )
    if kind is not None and kind != card_kind:
        raise ConfigError(f"{name}: its card says PRM kind {card_kind!r}, not {kind!r}")
    return {**opts, "kind": card_kind}
