"""`burnish scale` with the reward-free logprob weights on the real SmolLM2-135M-Instruct."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from burnish.scaling.run import run_search

pytestmark = pytest.mark.real


def test_particle_filtering_with_logprob_weights(smollm2: Path, tmp_path: Path) -> None:
    out = tmp_path / "pf.jsonl"
    summary = run_search(
        str(smollm2),
        "logprob",
        "pf",
        2,
        n=1,
        output=out,
        options={"max_steps": 3, "max_step_tokens": 24},
    )
    row = json.loads(out.read_text().splitlines()[0])
    assert summary["problems"] == 1 and len(row["particles"]) == 2
    assert row["tokens"]["generated"] > 0 and row["tokens"]["encoded"] < row["tokens"]["reencode"]
    assert all(len(p["steps"]) <= 3 for p in row["particles"])
