"""The character tokenizer: exact round trips, fixed special ids, chat template, HF save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from burnish.models import build_char_tokenizer, load_model, load_tokenizer, save_model
from burnish.models.tokenizer import ALPHABET
from burnish.tasks import get_task, list_tasks

MESSAGES = [
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "sort 3 1 2"},
]


def _task_texts() -> list[str]:
    texts = []
    for name in list_tasks():
        for ex in get_task(name).generate(50, "train"):
            texts += [ex.prompt, ex.answer]
    return texts


def test_special_token_ids(tok) -> None:
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok.pad_token == "<|pad|>" and tok.eos_token == "<|end|>"
    assert len(tok) == 7 + len(ALPHABET)
    assert tok.convert_tokens_to_ids(["<|system|>", "<|user|>", "<|assistant|>"]) == [4, 5, 6]


def test_every_task_text_round_trips_one_token_per_char(tok) -> None:
    texts = _task_texts()
    assert len(texts) == 2 * 50 * len(list_tasks())
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False)
        assert len(ids) == len(text), text
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == text
    # Whitespace is kept exactly (no normalisation, no stripping).
    tricky = "  a\n\n b  \n"
    assert tok.decode(tok.encode(tricky, add_special_tokens=False)) == tricky


def test_chat_template(tok) -> None:
    text = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert text == "<|bos|><|system|>sys<|end|><|user|>sort 3 1 2<|end|><|assistant|>"
    no_gen = tok.apply_chat_template(MESSAGES[1:], tokenize=False)
    assert no_gen == "<|bos|><|user|>sort 3 1 2<|end|>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids[:2] == [1, 4] and ids[-1] == 6
    assert len(ids) == 6 + len("sys") + len("sort 3 1 2")  # 6 special tokens, 1 per char


def _check_same(a, b) -> None:
    for text in ["count a in abca", " x  y\n", "Answer: 12"]:
        assert a.encode(text) == b.encode(text), text
        assert b.decode(a.encode(text)) == text
    assert a.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False) == (
        b.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    )
    assert (b.pad_token_id, b.bos_token_id, b.eos_token_id) == (0, 1, 2)


def test_save_pretrained_and_auto_tokenizer(tmp_path: Path, tok) -> None:
    tok.save_pretrained(str(tmp_path))
    _check_same(tok, AutoTokenizer.from_pretrained(str(tmp_path)))
    _check_same(tok, load_tokenizer(tmp_path))


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral"])
def test_tokenizer_beside_each_architecture(tmp_path: Path, tiny_model, tok, arch: str) -> None:
    """Regression: AutoTokenizer picks Qwen2Tokenizer for a qwen2 directory (drops spaces)."""
    path = save_model(tiny_model(arch), tok, tmp_path / arch)
    _, loaded = load_model(path)
    _check_same(tok, loaded)


def test_generate_with_tiny_model(tiny_model) -> None:
    tok = build_char_tokenizer()
    model = tiny_model("llama")
    text = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    enc = tok(
        [text, text[:-20] + "<|assistant|>"],
        return_tensors="pt",
        padding=True,
        add_special_tokens=False,
    )
    assert tok.padding_side == "left" and enc["input_ids"][1, 0] == tok.pad_token_id
    out = model.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=0, eos_token_id=2)
    assert out.dtype == torch.long and out.shape[0] == 2
    assert 0 < out.shape[1] - enc["input_ids"].shape[1] <= 5
    assert out[:, : enc["input_ids"].shape[1]].equal(enc["input_ids"])
    assert int(out.max()) < len(tok)
    assert isinstance(tok.decode(out[0, enc["input_ids"].shape[1] :]), str)
