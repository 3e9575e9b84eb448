"""Real English text on every machine: the Python reference manual in ``pydoc_data.topics``.

About 0.5 MB in 79 topics. A topic belongs to the ``train`` or ``test`` split by a stable hash
of its name (20% test, as the tasks split their prompts), so the split never changes, and
text is cut into token blocks by the model's own tokenizer. Used for perplexity
(``burnish eval --perplexity``), calibration (AIM statistics, quantized-cache experiments)
and long prompts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from transformers import PreTrainedTokenizerBase

from burnish.errors import DataError

__all__ = [
    "CORPORA",
    "TEST_FRACTION",
    "corpus_blocks",
    "corpus_texts",
    "cut_blocks",
    "special_prefix",
]

CORPORA = ("pydoc",)
TEST_FRACTION = 0.2
_SPLITS = ("train", "test")


def _split_of(topic: str) -> str:
    digest = hashlib.sha256(f"pydoc|{topic}".encode()).hexdigest()
    return "test" if int(digest[:8], 16) / 2**32 < TEST_FRACTION else "train"


def corpus_texts(split: str = "test", corpus: str = "pydoc") -> list[str]:
    """The texts of one split, in topic-name order (deterministic)."""
    if corpus not in CORPORA:
        raise DataError(f"unknown corpus {corpus!r}; choose one of {', '.join(CORPORA)}")
    if split not in _SPLITS:
        raise DataError(f"unknown corpus split {split!r}; choose train or test")
    from pydoc_data.topics import topics

    return [topics[t] for t in sorted(topics) if _split_of(t) == split]


def special_prefix(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The ids ``tokenizer`` puts before a text by default: Gemma's ``[<bos>]``; ``[]`` for
    SmolLM2 and the zoo's character tokenizer. Models trained with a BOS token predict badly
    without it (Gemma-3-270m's held-out perplexity: 108 without, 23 with)."""
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    for i in range(len(full) - len(plain) + 1):
        if full[i : i + len(plain)] == plain:
            return list(full[:i])
    return []


def cut_blocks(
    texts_ids: Iterable[list[int]],
    block_size: int,
    prefix: list[int],
    max_blocks: int | None = None,
    min_tokens: int = 2,
) -> list[list[int]]:
    """Each text's ids cut into consecutive blocks of at most ``block_size`` tokens, each
    starting with ``prefix`` (added where the text does not already start with it, as a
    rendered chat does); a block is kept if it has ``min_tokens``; at most ``max_blocks``."""
    if block_size < 2 + len(prefix):
        raise DataError(f"block_size must be at least {2 + len(prefix)}, got {block_size}")
    blocks: list[list[int]] = []
    n = len(prefix)
    for ids in texts_ids:
        if n and ids[:n] == prefix:
            ids = ids[n:]
        step = block_size - n
        for start in range(0, len(ids), step):
            block = prefix + ids[start : start + step]
            if len(block) >= min_tokens:
                blocks.append(block)
            if max_blocks is not None and len(blocks) >= max_blocks:
                return blocks
    return blocks


def corpus_blocks(
    tokenizer: PreTrainedTokenizerBase,
    split: str = "test",
    block_size: int = 512,
    max_blocks: int | None = None,
    min_tokens: int = 2,
    corpus: str = "pydoc",
) -> list[list[int]]:
    """Token-id blocks of at most ``block_size`` from the split's texts, in order (see
    :func:`cut_blocks`; each starts with the tokenizer's :func:`special_prefix`)."""
    texts = corpus_texts(split, corpus)
    ids = (tokenizer(t, add_special_tokens=False, verbose=False)["input_ids"] for t in texts)
    return cut_blocks(ids, block_size, special_prefix(tokenizer), max_blocks, min_tokens)
