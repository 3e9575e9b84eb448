"""Dataset preparation: length filtering with a report, and a cache keyed on every input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from burnish.data import IGNORE_INDEX, TokenizedDataset, prepare_dataset, tokenize_rows
from burnish.errors import DataError
from burnish.io import write_jsonl


def _row(prompt: str, answer: str, **extra: object) -> dict:
    msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return {"messages": msgs, **extra}


# Token counts: 1 bos + 2 role tokens + 2 end tokens = 5, plus one per character.
ROWS = [
    _row("ab", "c"),  # 8 tokens
    _row("a" * 20, "b" * 10),  # 35 tokens
    _row("hi", "x", unmask=True),  # 8 tokens, 3 + 2 labeled
    _row("a" * 7, "b" * 7),  # 19 tokens
]


def test_tokenize_rows_drops_long_samples_and_reports(tok) -> None:
    ds = tokenize_rows(ROWS, tok, max_seq_len=19, source="d.jsonl")
    assert ds.lengths() == [8, 8]  # 35 and 19 tokens are dropped (>= max_seq_len)
    r = ds.report
    assert (r.samples_in, r.samples_kept, r.dropped_too_long) == (4, 2, 2)
    assert (r.tokens, r.longest_kept, r.max_seq_len) == (16, 8, 19)
    assert r.loss_tokens == 2 + 5  # "c<|end|>", then "hi<|end|>x<|end|>" with unmask
    assert sum(int((y != IGNORE_INDEX).sum()) for y in ds.labels) == r.loss_tokens
    assert len(tokenize_rows(ROWS, tok, max_seq_len=20)) == 3  # 19 < 20 is kept


def test_every_sample_too_long(tok) -> None:
    with pytest.raises(DataError, match=r"no sample left .* \(raise max_seq_len\)"):
        tokenize_rows(ROWS, tok, max_seq_len=5)


def test_missing_messages_key_names_the_row(tok, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [ROWS[0], {"text": "hello"}])
    with pytest.raises(DataError, match=r"d\.jsonl:2: missing 'messages'"):
        prepare_dataset(path, tok, cache_dir=tmp_path / "cache")


def test_empty_file(tok, tmp_path: Path) -> None:
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no rows"):
        prepare_dataset(tmp_path / "e.jsonl", tok, cache_dir=tmp_path)


def _same(a: TokenizedDataset, b: TokenizedDataset) -> bool:
    return (
        len(a) == len(b)
        and all(x.equal(y) for x, y in zip(a.input_ids, b.input_ids, strict=True))
        and all(x.equal(y) for x, y in zip(a.labels, b.labels, strict=True))
        and a.report == b.report
    )


def test_cache_hit_and_invalidation(tok, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    cache = tmp_path / "cache"
    first = prepare_dataset(data, tok, max_seq_len=30, cache_dir=cache)
    files = sorted((cache / "data").iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors"
    assert first.report.dropped_too_long == 1

    # A second call gives the same dataset and reads the cache file without rewriting it.
    mtime = files[0].stat().st_mtime_ns
    second = prepare_dataset(data, tok, max_seq_len=30, cache_dir=cache)
    assert _same(first, second)
    assert all(x.dtype == torch.long for x in second.input_ids + second.labels)
    assert files[0].stat().st_mtime_ns == mtime
    assert sorted((cache / "data").iterdir()) == files

    # The cache is really used: a planted dataset under the key is what comes back.
    planted = TokenizedDataset([torch.tensor([1, 2])], [torch.tensor([-100, 2])], first.report)
    planted.save(files[0])
    assert prepare_dataset(data, tok, max_seq_len=30, cache_dir=cache).lengths() == [2]
    assert prepare_dataset(data, tok, 30, cache_dir=cache, use_cache=False).lengths() != [2]

    # Changing the data file's content, or an option, changes the key.
    write_jsonl(data, ROWS[:2])
    third = prepare_dataset(data, tok, max_seq_len=30, cache_dir=cache)
    assert len(third) == 1
    assert len(list((cache / "data").iterdir())) == 2
    prepare_dataset(data, tok, max_seq_len=40, cache_dir=cache)
    assert len(list((cache / "data").iterdir())) == 3


def test_cache_key_covers_the_tokenizer(tok, tmp_path: Path) -> None:
    from burnish.models import build_char_tokenizer

    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    prepare_dataset(data, tok, cache_dir=tmp_path)
    other = build_char_tokenizer()
    other.chat_template = other.chat_template.replace("eos_token }}", "eos_token + '\\n' }}")
    ds = prepare_dataset(data, other, cache_dir=tmp_path)
    assert len(list((tmp_path / "data").iterdir())) == 2
    assert ds.lengths()[0] == 8 + 2  # one newline after each of the two turns


def test_save_load_round_trip(tok, tmp_path: Path) -> None:
    ds = tokenize_rows(ROWS, tok, max_seq_len=100)
    ds.save(tmp_path / "x.safetensors")
    assert _same(ds, TokenizedDataset.load(tmp_path / "x.safetensors"))
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]
