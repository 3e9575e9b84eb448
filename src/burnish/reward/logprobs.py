"""Log-probabilities of a conversation's final response under one model, locally or through
an OpenAI-compatible server.

A conversation is an OpenAI message list whose last message is the assistant's response; each
backend renders it with its own model's chat template and tokenizer
(:func:`burnish.data.tokenize.tokenize_response`: the response's tokens are exactly those the
template emits for that message, its end-of-turn included), so two models with different
tokenizers score the same text. A backend returns ``(sum, tokens)`` per conversation: the
summed log-probability of the response tokens and their count.

- :class:`LocalLogProbs`: an HF model in this process; conversations sorted by length and
  packed padding-free into rows of ``ROW_TOKENS`` (block-diagonal attention) and
  ``batch_tokens`` slots per forward, the head run only on response positions.
- :class:`ServerLogProbs`: ``POST /v1/completions`` with the token ids as the prompt,
  ``echo`` and ``logprobs`` (the prompt tokens' log-probabilities: ``burnish serve``, vLLM).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from burnish.data.packing import collate_packed, plan_minibatches
from burnish.data.tokenize import IGNORE_INDEX, tokenize_response
from burnish.errors import ConfigError, DataError
from burnish.progress import progress_bar
from burnish.scaling.engine import EngineError
from burnish.scaling.openai_engine import post_json
from burnish.train.preference import packed_sequence_logps

__all__ = ["LocalLogProbs", "ResponseLogProbs", "ServerLogProbs", "encode_all"]

ROW_TOKENS = 1024  # tokens per packed row (longer conversations get a row of their own)

Conversation = list[dict[str, str]]


class ResponseLogProbs(Protocol):
    """``(summed log-prob, tokens)`` of each conversation's final response."""

    def __call__(self, conversations: Sequence[Conversation]) -> list[tuple[float, int]]: ...


def encode_all(
    conversations: Sequence[Conversation], tokenizer: PreTrainedTokenizerBase, who: str
) -> list[tuple[list[int], list[int]]]:
    """Every conversation as ``(input_ids, labels)`` (labels on the response only); errors
    name the conversation and the model."""
    return [
        tokenize_response(c, tokenizer, where=f"conversation {i} ({who})")
        for i, c in enumerate(conversations)
    ]


class LocalLogProbs:
    """Response log-probs under an in-process HF model (batched, length-sorted, packed)."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        batch_tokens: int = 4096,
        name: str = "model",
        progress: bool = False,
    ) -> None:
        if batch_tokens < 2:
            raise ConfigError(f"batch_tokens must be at least 2, got {batch_tokens}")
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.batch_tokens, self.progress = batch_tokens, progress

    @torch.no_grad()
    def __call__(self, conversations: Sequence[Conversation]) -> list[tuple[float, int]]:
        encoded = encode_all(conversations, self.tokenizer, self.name)
        ids = [torch.tensor(x) for x, _ in encoded]
        labels = [torch.tensor(y) for _, y in encoded]
        lengths = [len(x) for x in ids]
        # rows of ROW_TOKENS (attention is quadratic in a row's length), batch_tokens a forward
        longest = max(lengths)
        plans = plan_minibatches(
            lengths,
            max(min(ROW_TOKENS, self.batch_tokens), longest),
            max(self.batch_tokens, longest),
        )
        sums = torch.zeros(len(ids), dtype=torch.float64)
        counts = torch.zeros(len(ids), dtype=torch.long)
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id or 0
        with progress_bar(len(ids), f"log-probs ({self.name})", self.progress) as advance:
            for rows in plans:
                batch = collate_packed(rows, ids, labels, pad).to(device)
                s, n = packed_sequence_logps(self.model, batch, rows, lengths)
                sums += s.double().cpu()
                counts += n.cpu()
                advance(sum(len(r) for r in rows))
        return [(float(s), int(n)) for s, n in zip(sums, counts, strict=True)]


class ServerLogProbs:
    """Response log-probs from an OpenAI-compatible completions endpoint (echoed prompt
    log-probabilities); ``tokenizer`` must be the served model's (it renders the template)."""

    def __init__(
        self,
        base_url: str,
        model_name: str,
        tokenizer: PreTrainedTokenizerBase,
        api_key: str | None = None,
        timeout: float = 120.0,
        concurrency: int = 4,
    ) -> None:
        self.url = base_url.rstrip("/").removesuffix("/v1") + "/v1/completions"
        self.model_name, self.tokenizer = model_name, tokenizer
        self.api_key, self.timeout, self.concurrency = api_key, timeout, concurrency

    def _post(self, ids: list[int]) -> list[float | None]:
        body = {"model": self.model_name, "prompt": ids, "max_tokens": 1, "temperature": 0,
                "echo": True, "logprobs": 0}  # fmt: skip
        try:
            doc = post_json(self.url, body, self.api_key, self.timeout)
        except EngineError as e:
            raise ConfigError(str(e)) from None
        lps = (doc["choices"][0].get("logprobs") or {}).get("token_logprobs")
        if not lps or len(lps) < len(ids):
            raise ConfigError(
                f"{self.url}: the server returned no prompt log-probabilities (it must support "
                "`echo` with `logprobs`, as burnish serve and vLLM do)"
            )
        return lps[: len(ids)]

    def __call__(self, conversations: Sequence[Conversation]) -> list[tuple[float, int]]:
        encoded = encode_all(conversations, self.tokenizer, self.model_name)
        with ThreadPoolExecutor(self.concurrency) as pool:
            answers = list(pool.map(self._post, [x for x, _ in encoded]))
        out = []
        for (_, labels), lps in zip(encoded, answers, strict=True):
            picked = [lps[t] for t, y in enumerate(labels) if y != IGNORE_INDEX]
            if any(v is None for v in picked):
                raise DataError("a response token has no log-probability (the first token?)")
            out.append((float(sum(picked)), len(picked)))
        return out
