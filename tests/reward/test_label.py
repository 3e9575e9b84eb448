"""``burnish label``: best vs worst of k samples in TRL's conversational format, the margin,
and resumption with no pair lost or duplicated (interrupted between chunks and mid-write)."""

from __future__ import annotations

import json

import pytest

from burnish.errors import ConfigError, DataError, OutputExistsError
from burnish.io import read_jsonl, write_jsonl
from burnish.reward.label import (
    LabelSettings,
    LocalSampler,
    label_prompts,
    load_prompts,
    progress_path,
)

PROMPTS = [(f"p{i}", [{"role": "user", "content": f"add {i}+{2 * i}"}]) for i in range(10)]


def by_length(convs) -> list[float]:
    return [float(len(c[-1]["content"])) for c in convs]


@pytest.fixture(scope="module")
def sampler():
    from burnish.models import load_model
    from burnish.models.zoo import resolve_model

    return LocalSampler(*load_model(resolve_model("arith-policy")), LabelSettings(max_tokens=12))


SETTINGS = LabelSettings(k=3, max_tokens=12, chunk=3)


def test_rows_are_trl_pairs_of_best_and_worst(sampler, tmp_path) -> None:
    out = tmp_path / "pairs.jsonl"
    summary = label_prompts(PROMPTS, sampler, by_length, out, SETTINGS)
    rows = read_jsonl(out)
    assert summary["pairs"] == len(rows) > 0
    for r in rows:
        assert set(r) >= {"id", "prompt", "chosen", "rejected", "score_chosen", "score_rejected"}
        assert r["chosen"][0]["role"] == "assistant" and r["prompt"][0]["role"] == "user"
        assert r["score_chosen"] == max(r["scores"]) and r["score_rejected"] == min(r["scores"])
        assert r["chosen"][0]["content"] != r["rejected"][0]["content"]
    strict = label_prompts(PROMPTS, sampler, by_length, tmp_path / "m.jsonl",
                           LabelSettings(k=3, max_tokens=12, chunk=3, margin=3.0))  # fmt: skip
    assert all(
        r["score_chosen"] - r["score_rejected"] >= 3 for r in read_jsonl(tmp_path / "m.jsonl")
    )
    assert strict["pairs"] <= summary["pairs"]


def test_a_killed_run_resumes_to_the_uninterrupted_rows(sampler, tmp_path) -> None:
    whole = tmp_path / "whole.jsonl"
    label_prompts(PROMPTS, sampler, by_length, whole, SETTINGS)

    calls = []

    def dies_at_chunk_2(prompts, k, seed):
        calls.append(seed)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return sampler(prompts, k, seed)

    out = tmp_path / "part.jsonl"
    with pytest.raises(KeyboardInterrupt):
        label_prompts(PROMPTS, dies_at_chunk_2, by_length, out, SETTINGS)
    assert json.loads(progress_path(out).read_text())["chunks"] == 2
    with out.open("a") as f:  # a chunk that was being written when the process died
        f.write('{"id": "p6", "prompt": [], "chosen": [], "rejec')
    with pytest.raises(OutputExistsError, match="--resume"):
        label_prompts(PROMPTS, sampler, by_length, out, SETTINGS)
    label_prompts(PROMPTS, sampler, by_length, out, SETTINGS, resume=True)
    assert out.read_text() == whole.read_text()
    with pytest.raises(ConfigError, match="other settings"):
        label_prompts(PROMPTS, sampler, by_length, out, LabelSettings(k=4, chunk=3), resume=True)


def test_prompt_files_and_settings_are_checked(tmp_path) -> None:
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [{"prompt": "a"}, {"id": "x", "prompt": [{"role": "user", "content": "b"}]}])
    assert [p for p, _ in load_prompts(path)] == ["1", "x"]
    write_jsonl(path, [{"id": "x", "prompt": "a"}, {"id": "x", "prompt": "b"}])
    with pytest.raises(DataError, match="duplicate id"):
        load_prompts(path)
    write_jsonl(path, [{"text": "a"}])
    with pytest.raises(DataError, match="row 1: missing `prompt`"):
        load_prompts(path)
    with pytest.raises(ConfigError, match="at least 2"):
        LabelSettings(k=1)
    with pytest.raises(ConfigError, match="temperature"):
        LabelSettings(temperature=0)
