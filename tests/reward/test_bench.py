"""RewardBench-style evaluation: row formats, ties, section weighting by example count, bad
rows."""

from __future__ import annotations

import pytest

from burnish.reward.bench import PairResult, summarize


def test_sections_weight_subsets_by_example_count() -> None:
    res = [PairResult("mt-bench-easy", 1, 0)] * 3 + [PairResult("alpacaeval-easy", 0, 1)]
    res += [PairResult("hep-go", 2, 2), PairResult("mine", 0, 1)]
    doc = summarize(res)
    assert doc["subsets"]["mt-bench-easy"] == {"n": 3, "accuracy": 1.0}
    assert doc["sections"]["Chat"]["accuracy"] == pytest.approx(0.75)  # 3 of 4, not (1 + 0) / 2
    assert doc["sections"]["Reasoning"]["accuracy"] == 0.5  # a tie counts half
    assert doc["sections"]["mine"]["accuracy"] == 0.0  # outside RewardBench: its own section
    assert doc["overall"] == pytest.approx((0.75 + 0.5 + 0.0) / 3)
