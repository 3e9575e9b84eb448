"""Perplexity on token blocks, and the pydoc corpus's fixed train/test split."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from burnish.data.corpus import corpus_blocks, corpus_texts
from burnish.errors import DataError
from burnish.eval.perplexity import perplexity


def test_corpus_split_is_fixed_and_disjoint(tok) -> None:
    train, test = corpus_texts("train"), corpus_texts("test")
    assert train and test and not set(train) & set(test)
    assert len(test) < len(train)
    assert corpus_texts("test") == test  # deterministic
    blocks = corpus_blocks(tok, "test", block_size=64, max_blocks=5)
    assert len(blocks) == 5 and all(2 <= len(b) <= 64 for b in blocks)
    with pytest.raises(DataError, match="unknown corpus split"):
        corpus_texts("dev")


def test_perplexity_is_exp_of_the_mean_token_nll(tiny_model) -> None:
    """Checked against a per-block computation by hand (padding and batching change nothing)."""
    model = tiny_model("llama")
    g = torch.Generator().manual_seed(0)
    blocks = [torch.randint(3, 100, (n,), generator=g).tolist() for n in (9, 4, 17, 2)]
    total, count = 0.0, 0
    with torch.no_grad():
        for b in blocks:
            logp = model(torch.tensor([b])).logits[0, :-1].log_softmax(-1)
            total -= logp.gather(1, torch.tensor(b[1:])[:, None]).sum().item()
            count += len(b) - 1
    res = perplexity(model, blocks, pad_id=0, batch_tokens=20)
    assert res.tokens == count == 28 and res.blocks == 4
    assert res.nll == pytest.approx(total / count, rel=1e-5)
    assert res.perplexity == pytest.approx(math.exp(total / count), rel=1e-5)


@pytest.mark.real
def test_cli_perplexity_of_the_real_model(smollm2: Path, tmp_path: Path) -> None:
    import json

    from burnish.cli import main

    out = tmp_path / "ppl.json"
    rc = main(
        [
            "eval",
            str(smollm2),
            "--perplexity",
            "--ppl-blocks",
            "2",
            "--ppl-block-size",
            "128",
            "--no-progress",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    ppl = json.loads(out.read_text())["perplexity"]
    assert ppl["tokens"] > 200 and 2 < ppl["perplexity"] < 60  # real text, a real model


def test_blocks_start_with_the_tokenizers_bos_prefix() -> None:
    """A tokenizer that adds a BOS token by default gets it at the head of every block (once,
    also where a text already starts with it); one that adds none gets plain cuts."""
    from burnish.data.corpus import cut_blocks, special_prefix

    class Bos:
        def __call__(self, text: str, add_special_tokens: bool = True, **kw: object) -> dict:
            ids = [ord(c) for c in text]
            return {"input_ids": ([2] if add_special_tokens else []) + ids}

    assert special_prefix(Bos()) == [2]
    texts = [list(range(10, 17)), [2, 30, 31, 32]]
    assert cut_blocks(texts, 4, [2]) == [[2, 10, 11, 12], [2, 13, 14, 15], [2, 16], [2, 30, 31, 32]]
    assert cut_blocks(texts, 4, [], max_blocks=3) == [
        [10, 11, 12, 13],
        [14, 15, 16],
        [2, 30, 31, 32],
    ]
    with pytest.raises(DataError, match="block_size must be at least 3"):
        cut_blocks(texts, 2, [2])


def test_zoo_tokenizer_has_no_prefix(tok) -> None:
    from burnish.data.corpus import special_prefix

    assert special_prefix(tok) == []
