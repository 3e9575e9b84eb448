"""Reward models: aggregation, the two-class HF PRM, tokenizer checks, log-prob reward."""

from __future__ import annotations

import asyncio
import math

import pytest
import torch

from burnish.errors import ConfigError
from burnish.models.tokenizer import build_char_tokenizer
from burnish.models.zoo import list_zoo
from burnish.scaling.particles import Particle
from burnish.scaling.reward import (
    HFProcessRewardModel,
    LogProbReward,
    OutcomeRewardModel,
    aggregate,
    check_tokenizer_compatible,
    load_prm,
    prm_input_ids,
)


def test_aggregations() -> None:
    s = [0.9, 0.5, 0.8]
    assert aggregate(s, "last") == 0.8 and aggregate(s, "model") == 0.8
    assert aggregate(s, "min") == 0.5
    assert aggregate(s, "prod") == pytest.approx(0.36)
    assert aggregate([], "min") == 0.5
    with pytest.raises(ConfigError, match="aggregation"):
        aggregate(s, "mean")


def test_hf_prm_reads_two_class_head_at_separators(tiny_llama, char_tok) -> None:
    prm = HFProcessRewardModel(tiny_llama, char_tok)
    ids, pos = prm_input_ids(char_tok, "chain 1+2", ["1+2=3", "Answer: 3"], "\n")
    assert [char_tok.decode([ids[p]]) for p in pos] == ["\n", "\n"]
    with torch.no_grad():
        logits = tiny_llama(torch.tensor([ids])).logits[0]
    good, bad = prm.label_ids
    want = [float(torch.softmax(logits[p, [good, bad]], -1)[0]) for p in pos]
    got = prm.score_texts("chain 1+2", [["1+2=3", "Answer: 3"], []])
    assert got[0] == pytest.approx(want, abs=1e-5) and got[1] == []
    # "model" scores the whole answer as one step: with a newline separator that is the
    # last step's score (a causal PRM sees the same text).
    whole = prm.score_texts("chain 1+2", [["1+2=3", "Answer: 3"]], whole=True)
    assert whole[0] == pytest.approx(want[-1:], abs=1e-5)
    p = Particle(uid=0, steps=("1+2=3", "Answer: 3"))
    orm = asyncio.run(OutcomeRewardModel(prm).score("chain 1+2", [p]))
    assert orm[0] == pytest.approx(want[-1:], abs=1e-5)


def test_prm_separator_must_be_one_token(tiny_llama, char_tok) -> None:
    with pytest.raises(ConfigError, match="separator"):
        HFProcessRewardModel(tiny_llama, char_tok, separator="\n\n")


def test_tokenizer_mismatch_is_a_config_error() -> None:
    prm_tok = build_char_tokenizer()
    check_tokenizer_compatible(build_char_tokenizer(), prm_tok)  # same alphabet: fine
    policy_tok = build_char_tokenizer()
    policy_tok.add_tokens(["é"])
    with pytest.raises(ConfigError, match="tokenizer mismatch"):
        check_tokenizer_compatible(policy_tok, prm_tok)


def test_logprob_reward_uses_recorded_logprobs() -> None:
    p = Particle(uid=0, steps=("a", "b"), step_logprobs=(-0.5, -1.5))
    per_step = asyncio.run(LogProbReward().score("x", [p]))
    assert per_step[0] == pytest.approx([math.exp(-0.5), math.exp(-1.5)])
    whole = asyncio.run(LogProbReward().score("x", [p], whole=True))
    assert whole[0] == pytest.approx([math.exp(-1.0)])


@pytest.mark.skipif("arith-prm" not in list_zoo(), reason="arith-prm not built")
def test_arith_prm_loads_with_its_card_settings() -> None:
    """The shipped PRM loads from its card (separator, labels) and scores every step in (0, 1).

    Quality is measured on its card (prm_eval), not asserted here: the current build barely
    separates right from wrong steps (see the card and the benchmark notes)."""
    prm = load_prm("arith-prm")
    assert prm.separator == "\n" and len(prm.label_ids) == 2
    scores = prm.score_texts("chain 2*3*4-1", [["2*3=6", "6*4=24", "24-1=23", "Answer: 23"]])
    assert len(scores[0]) == 4 and all(0 < x < 1 for x in scores[0])
