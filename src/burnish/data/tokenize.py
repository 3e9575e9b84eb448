"""Chat messages -> ``input_ids`` and ``labels`` through the model's own chat template.

Spans are found by rendering prefixes of the conversation with the template and reading
token offsets, so it works for any prefix-stable template (the zoo's, Llama-3's, Qwen2's,
Granite's) without special markers in the template. By default only assistant turns are
trained, including whatever the template emits to close the turn (the EOS); a sample-level
``unmask: true`` trains every non-system turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jinja2 import TemplateError
from transformers import PreTrainedTokenizerBase

from burnish.errors import DataError
from burnish.models.io import chat_text

__all__ = ["IGNORE_INDEX", "tokenize_conversation", "tokenize_response", "validate_messages"]

IGNORE_INDEX = -100
_ROLES = ("system", "user", "assistant")
_PLACEHOLDER = "\x00burnish-content\x00"


def validate_messages(messages: Any, where: str = "sample") -> list[dict[str, str]]:
    """Check the OpenAI-style message list; raise DataError naming ``where`` otherwise."""
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{role, content}}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{where}: messages[{i}] needs 'role' and 'content'")
        if m["role"] not in _ROLES:
            raise DataError(f"{where}: messages[{i}] has role {m['role']!r}; use {_ROLES}")
        if not isinstance(m["content"], str):
            raise DataError(f"{where}: messages[{i}].content must be a string")
    return messages


def _render(tok: PreTrainedTokenizerBase, msgs: Sequence[dict], gen: bool = False) -> str:
    if not msgs:
        return ""
    try:
        return chat_text(tok, list(msgs), add_generation_prompt=gen)
    except TemplateError as e:
        name = getattr(tok, "name_or_path", "") or "the model"
        raise DataError(
            f"{name}: its chat template cannot render this conversation ({e}); give the "
            "messages in an order it accepts, or another template (--chat-template)"
        ) from None


def _trainable_spans(
    tok: PreTrainedTokenizerBase, messages: list[dict], full: str, unmask: bool, where: str
) -> list[tuple[int, int]]:
    """Character spans [start, end) of ``full`` that carry labels."""
    spans = []
    for i, m in enumerate(messages):
        if m["role"] == "system" or (m["role"] == "user" and not unmask):
            continue
        start = len(_render(tok, messages[:i], gen=m["role"] == "assistant"))
        end_text = _render(tok, messages[: i + 1])
        if not full.startswith(end_text):
            raise DataError(
                f"{where}: the tokenizer's chat template is not prefix-stable (rendering the "
                f"first {i + 1} messages is not a prefix of the whole conversation)"
            )
        if m["role"] == "user":
            # Skip the role header before a user's content (e.g. "<|user|>"), as the generation
            # prompt does for assistant turns: locate it by rendering a placeholder content.
            probe = _render(tok, [*messages[:i], {"role": "user", "content": _PLACEHOLDER}])
            found = probe.find(_PLACEHOLDER, start)
            start = found if found >= 0 else start
        spans.append((start, len(end_text)))
    return spans


def tokenize_conversation(
    messages: list[dict[str, str]],
    tokenizer: PreTrainedTokenizerBase,
    unmask: bool = False,
    where: str = "sample",
) -> tuple[list[int], list[int]]:
    """Tokenize one conversation; return ``(input_ids, labels)`` of equal length.

    ``labels[t] == input_ids[t]`` where token t is trainable, else IGNORE_INDEX. Labels are
    not shifted (position t is the target of the prediction made at t - 1). Raises DataError
    if the conversation is malformed or has no trainable token.
    """
    messages = validate_messages(messages, where)
    full = _render(tokenizer, messages)
    spans = _trainable_spans(tokenizer, messages, full, unmask, where)
    ids, labels = _label_spans(tokenizer, full, spans, where)
    if all(x == IGNORE_INDEX for x in labels):
        raise DataError(
            f"{where}: no trainable token (no assistant turn with content; set 'unmask': true "
            "to train user turns too)"
        )
    return ids, labels


def tokenize_response(
    messages: list[dict[str, str]], tokenizer: PreTrainedTokenizerBase, where: str = "sample"
) -> tuple[list[int], list[int]]:
    """Tokenize a conversation whose last message is the assistant's response; labels only
    on that response's tokens (what its chat template emits for it, the end-of-turn included,
    as SFT trains them). DataError when the last message is not an assistant's or the
    response has no token of its own."""
    messages = validate_messages(messages, where)
    if messages[-1]["role"] != "assistant":
        raise DataError(f"{where}: the last message must be the assistant's response")
    if not messages[-1]["content"].strip():
        raise DataError(f"{where}: the response is empty")
    full = _render(tokenizer, messages)
    spans = _trainable_spans(tokenizer, messages, full, False, where)[-1:]
    ids, labels = _label_spans(tokenizer, full, spans, where)
    if all(x == IGNORE_INDEX for x in labels):
        raise DataError(f"{where}: the response has no token after the chat template")
    return ids, labels


def _label_spans(
    tokenizer: PreTrainedTokenizerBase, full: str, spans: list[tuple[int, int]], where: str
) -> tuple[list[int], list[int]]:
    """``full``'s token ids, and labels on the tokens that start inside ``spans``."""
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = enc["input_ids"]
    unk = tokenizer.unk_token_id
    if unk is not None and unk in ids:
        pos = enc["offset_mapping"][ids.index(unk)][0]
        raise DataError(f"{where}: character {full[pos]!r} is outside the tokenizer's vocabulary")
    labels = [IGNORE_INDEX] * len(ids)
    for t, (s, e) in enumerate(enc["offset_mapping"]):
        if e > s and any(a <= s < b for a, b in spans):
            labels[t] = ids[t]
    return ids, labels
