"""Preference rows: strings and conversations, one clear error per bad row, tokenized pairs."""

from __future__ import annotations

import pytest

from burnish.data.preference import load_pairs, tokenize_pairs
from burnish.errors import DataError
from burnish.io import write_jsonl
from burnish.reward.bench import evaluate_pairs


def test_rows_as_strings_and_as_conversations(tmp_path) -> None:
    path = tmp_path / "p.jsonl"
    user = [{"role": "user", "content": "2+2"}]
    write_jsonl(
        path,
        [
            {"prompt": "2+2", "chosen": "4", "rejected": "5", "subset": "s"},
            {
                "prompt": user,
                "chosen": [{"role": "assistant", "content": "4"}],
                "rejected": [*user, {"role": "assistant", "content": "5"}],
            },
        ],
    )
    pairs = load_pairs(path)
    want = [*user, {"role": "assistant", "content": "4"}]
    assert pairs[0][0] == want and pairs[1][0] == want
    assert pairs[1][1][-1]["content"] == "5" and len(pairs[1][1]) == 2
    assert [p[2] for p in pairs] == ["s", "all"]
    results = evaluate_pairs(pairs, lambda convs: [len(c[-1]["content"]) for c in convs])
    assert [r.correct for r in results] == [0.5, 0.5]


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({"prompt": "x", "rejected": "y"}, "row 1: missing `chosen`"),
        ({"prompt": "x", "chosen": 3, "rejected": "y"}, "`chosen` must be a string"),
        (
            {"prompt": "x", "chosen": [{"role": "user", "content": "z"}], "rejected": "y"},
            "must end",
        ),
    ],
)
def test_bad_rows_get_one_clear_error(tmp_path, row, words) -> None:
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, [row])
    with pytest.raises(DataError, match=words):
        load_pairs(path)


def test_tokenized_pairs_drop_what_does_not_fit(tok, tmp_path) -> None:
    path = tmp_path / "p.jsonl"
    write_jsonl(
        path,
        [
            {"prompt": "2+2", "chosen": "4", "rejected": "5"},
            {"prompt": "x" * 300, "chosen": "y", "rejected": "z"},
        ],
    )
    pairs = tokenize_pairs(load_pairs(path), tok, max_pair_tokens=200)
    assert len(pairs) == 1 and pairs.dropped == 1
    assert pairs.pair_lengths()[0] == len(pairs.chosen_ids[0]) + len(pairs.rejected_ids[0])
    with pytest.raises(DataError, match="longer than 4 tokens"):
        tokenize_pairs(load_pairs(path), tok, max_pair_tokens=4)
