"""Reward models: score a prompt and its steps -> one score in (0, 1) per step.

- :class:`HFProcessRewardModel`: a causal LM read as a two-class process reward model in the
  style of Qwen2.5-Math-PRM: after each step the PRM input holds a step-separator token; the
  score of a step is softmax over the logits of two reserved label tokens (good, bad) at that
  separator's position, probability of "good". The zoo's ``arith-prm`` is one.
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
from burnish.scaling.batching import MicroBatcher
from burnish.scaling.particles import Particle, Usage

__all__ = [
    "AGGREGATIONS",
    "HFProcessRewardModel",
    "LogProbReward",
    "OutcomeRewardModel",
    "RewardModel",
    "aggregate",
    "check_tokenizer_compatible",
    "load_prm",
    "prm_input_ids",
    "score_particles",
]

AGGREGATIONS = ("model", "last", "min", "prod")


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
    head = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = list(tokenizer(head, add_special_tokens=False)["input_ids"])
    sep = tokenizer(separator, add_special_tokens=False)["input_ids"]
    positions = []
    for step in steps:
        ids += tokenizer(step, add_special_tokens=False)["input_ids"] + sep
        positions.append(len(ids) - 1)
    return ids, positions


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


class HFProcessRewardModel:
    """A causal LM read as a two-class PRM at step-separator positions (Qwen2.5-Math-PRM style).

    Args:
        model, tokenizer: the PRM (any HF causal LM).
        separator: text appended after each step; must be one token.
        good, bad: the two label tokens whose logits at a separator form the two-class head.
        max_batch_tokens: padded tokens per forward pass.
        cache_size: scored (prompt, steps) kept, so clones of one particle are scored once.
    """

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
        self.model, self.tokenizer = model.eval(), tokenizer
        self.separator = separator
        _single_token(tokenizer, separator, "separator")
        self.label_ids = [
            _single_token(tokenizer, good, "label"),
            _single_token(tokenizer, bad, "label"),
        ]
        self.max_batch_tokens = max_batch_tokens
        self._cache: OrderedDict[tuple, list[float]] = OrderedDict()
        self._cache_size = cache_size
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
        encoded = [prm_input_ids(self.tokenizer, k[0], k[1], self.separator) for k in keys]
        for key, (ids, _) in zip(keys, encoded, strict=True):
            usage = requests[todo[key][0][0]][3]
            if usage is not None:
                usage.prm += len(ids)
        scores = self._forward(encoded)
        for key, s in zip(keys, scores, strict=True):
            self._remember(key, s)
            for r, j in todo[key]:
                out[r][j] = s
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def _forward(self, encoded: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        """Scores at separator positions for each (ids, positions), in length-sorted batches."""
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
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            two = logits[..., self.label_ids].float().softmax(-1)[..., 0].cpu()  # [B, T]
            for b, i in enumerate(rows):
                results[i] = two[b, encoded[i][1]].tolist()
            start = end
        return results

    def _remember(self, key: tuple, scores: list[float]) -> None:
        self._cache[key] = scores
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


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
            if whole and lps:
                lps = [sum(lps) / len(lps)]
            out.append([math.exp(x) for x in lps])
        return out


def load_prm(
    name_or_path: str | Path, device: str = "cpu", dtype: str = "float32"
) -> HFProcessRewardModel:
    """Load a PRM directory or zoo name; separator and label tokens come from its card.json
    ("prm" key: separator, good, bad), defaulting to newline, "+" and "-"."""
    from burnish.models.io import load_model
    from burnish.models.zoo import resolve_model

    path = resolve_model(name_or_path)
    model, tok = load_model(path, dtype=dtype, device=device)
    opts: dict = {}
    card = Path(path) / "card.json"
    if card.is_file():
        opts = json.loads(card.read_text()).get("prm", {})
    return HFProcessRewardModel(
        model,
        tok,
        separator=opts.get("separator", "\n"),
        good=opts.get("good", "+"),
        bad=opts.get("bad", "-"),
    )
