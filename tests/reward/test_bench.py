"""RewardBench-style evaluation: row formats, ties, section weighting by example count, bad
rows."""

from __future__ import annotations

import pytest

from burnish.errors import DataError
from burnish.io import write_jsonl
from burnish.reward.bench import PairResult, evaluate_pairs, load_pairs, summarize


def test_sections_weight_subsets_by_example_count() -> None:
    res = [PairResult("mt-bench-easy", 1, 0)] * 3 + [PairResult("alpacaeval-easy", 0, 1)]
    res += [PairResult("hep-go", 2, 2), PairResult("mine", 0, 1)]
    doc = summarize(res)
    assert doc["subsets"]["mt-bench-easy"] == {"n": 3, "accuracy": 1.0}
    assert doc["sections"]["Chat"]["accuracy"] == pytest.approx(0.75)  # 3 of 4, not (1 + 0) / 2
    assert doc["sections"]["Reasoning"]["accuracy"] == 0.5  # a tie counts half
    assert doc["sections"]["mine"]["accuracy"] == 0.0  # outside RewardBench: its own section
    assert doc["overall"] == pytest.approx((0.75 + 0.5 + 0.0) / 3)


def test_rows_as_strings_and_as_conversations(tmp_path) -> None:
    path = tmp_path / "p.jsonl"
    user = [{"role": "user", "content": "2+2"}]
    write_jsonl(path, [
        {"prompt": "2+2", "chosen": "4", "rejected": "5", "subset": "s"},
        {"prompt": user, "chosen": [{"role": "assistant", "content": "4"}],
         "rejected": [*user, {"role": "assistant", "content": "5"}]},
    ])  # fmt: skip
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
