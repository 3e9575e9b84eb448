"""Real English text on every machine: the Python reference manual in ``pydoc_data.topics``.

About 0.5 MB in 79 topics. A topic belongs to the ``train`` or ``test`` split by a stable hash
of its name (20% test, as the tasks split their prompts), so the split never changes, and
text is cut into token blocks by the model's own tokenizer. Used for perplexity
(``burnish eval --perplexity``), calibration (AIM statistics, quantized-cache experiments)
and long prompts.
"""

from __future__ import annotations

import hashlib

from transformers import PreTrainedTokenizerBase

from burnish.errors import DataError

__all__ = ["CORPORA", "TEST_FRACTION", "corpus_blocks", "corpus_texts"]

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


def corpus_blocks(
    tokenizer: PreTrainedTokenizerBase,
    split: str = "test",
    block_size: int = 512,
    max_blocks: int | None = None,
    min_tokens: int = 2,
    corpus: str = "pydoc",
) -> list[list[int]]:
    """Token-id blocks of at most ``block_size`` from the split's texts (each text cut into
    consecutive blocks; a text's last, shorter block kept if it has ``min_tokens``), at most
    ``max_blocks`` of them, in order."""
    if block_size < 2:
        raise DataError(f"block_size must be at least 2, got {block_size}")
    blocks: list[list[int]] = []
    for text in corpus_texts(split, corpus):
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        for start in range(0, len(ids), block_size):
            block = ids[start : start + block_size]
            if len(block) >= min_tokens:
                blocks.append(block)
            if max_blocks is not None and len(blocks) >= max_blocks:
                return blocks
    return blocks
