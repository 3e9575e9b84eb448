"""Reward models: aggregation, the two-class and likelihood HF PRMs, tokenizer checks,
log-prob reward, the shipped arith-prm."""

from __future__ import annotations

import asyncio
import json
import math
import random

import pytest
import torch

from burnish.errors import ConfigError
from burnish.models.tokenizer import build_char_tokenizer
from burnish.models.zoo import list_zoo
from burnish.scaling.particles import Particle
from burnish.scaling.reward import (
    HFProcessRewardModel,
    LikelihoodProcessRewardModel,
    LogProbReward,
    OutcomeRewardModel,
    aggregate,
    answer_logprob_sums,
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


def test_answer_logprob_sums_match_token_by_token(tiny_llama, char_tok) -> None:
    """Running sums of answer-token log-probs, padded batch == one row at a time."""
    rows = [("chain 1+2", ["1+2=3", "Answer: 3"]), ("chain 4*5-6", ["4*5=20"])]
    encoded = [prm_input_ids(char_tok, p, s, "\n") for p, s in rows]
    starts = [len(prm_input_ids(char_tok, p, [], "")[0]) for p, _ in rows]
    longest = max(len(ids) for ids, _ in encoded)
    batch = torch.zeros(len(rows), longest, dtype=torch.long)
    mask = torch.zeros_like(batch)
    for b, (ids, _) in enumerate(encoded):
        batch[b, : len(ids)], mask[b, : len(ids)] = torch.tensor(ids), 1
    with torch.no_grad():
        sums = answer_logprob_sums(
            tiny_llama(input_ids=batch, attention_mask=mask).logits, batch, torch.tensor(starts)
        )
    for b, ((ids, pos), start) in enumerate(zip(encoded, starts, strict=True)):
        with torch.no_grad():
            logp = tiny_llama(torch.tensor([ids])).logits[0].log_softmax(-1)
        for p in pos:
            want = sum(float(logp[t - 1, ids[t]]) for t in range(start, p + 1))
            assert float(sums[b, p]) == pytest.approx(want, abs=1e-4)
        assert float(sums[b, start - 1]) == 0.0  # nothing counted before the answer


def test_likelihood_prm_scores_and_monotonicity(tiny_llama, char_tok) -> None:
    prm = LikelihoodProcessRewardModel(tiny_llama, char_tok, beta=0.5, bias=2.0)
    steps = ["1+2=3", "3*4=12", "Answer: 12"]
    ids, pos = prm_input_ids(char_tok, "chain 1+2*4", steps, "\n")
    start = len(prm_input_ids(char_tok, "chain 1+2*4", [], "")[0])
    with torch.no_grad():
        logp = tiny_llama(torch.tensor([ids])).logits[0].log_softmax(-1)
    want = [
        1
        / (1 + math.exp(-(0.5 * sum(float(logp[t - 1, ids[t]]) for t in range(start, p + 1)) + 2)))
        for p in pos
    ]
    got = prm.score_texts("chain 1+2*4", [steps, steps[:1]])
    assert got[0] == pytest.approx(want, abs=1e-4)
    assert got[1] == pytest.approx(want[:1], abs=1e-4)  # a prefix scores as its own steps
    assert got[0] == sorted(got[0], reverse=True)  # log-probs <= 0: never increases
    whole = prm.score_texts("chain 1+2*4", [steps], whole=True)
    assert whole[0] == pytest.approx(want[-1:], abs=1e-4)


def test_load_prm_reads_kind_from_card(tmp_path, tiny_llama, char_tok) -> None:
    tiny_llama.save_pretrained(tmp_path)
    char_tok.save_pretrained(tmp_path)
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"prm": {"kind": "likelihood", "beta": 0.25, "bias": 1.5}}))
    prm = load_prm(tmp_path)
    assert isinstance(prm, LikelihoodProcessRewardModel)
    assert (prm.beta, prm.bias) == (0.25, 1.5)
    card.write_text(json.dumps({"prm": {"separator": "\n", "good": "+", "bad": "-"}}))
    assert type(load_prm(tmp_path)) is HFProcessRewardModel
    card.write_text(json.dumps({"prm": {"kind": "regression"}}))
    with pytest.raises(ConfigError, match="unknown PRM kind 'regression'"):
        load_prm(tmp_path)


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
def test_arith_prm_tells_right_from_wrong() -> None:
    """The shipped PRM loads from its card and ranks each gold solution above minimally
    wrong copies of it (answer off by one; one step nudged, the rest carried forward)."""
    from burnish.tasks import get_task
    from burnish.tasks.arith_chain import corrupt_solution

    prm = load_prm("arith-prm")
    scores = prm.score_texts("chain 2*3*4-1", [["2*3=6", "6*4=24", "24-1=23", "Answer: 23"]])
    assert len(scores[0]) == 4 and all(0 < x < 1 for x in scores[0])
    task, rng, wins = get_task("arith_chain"), random.Random(0), 0
    problems = task.generate(20, "test", seed=11)
    for example in problems:
        gold = task.solve(example.prompt)
        lines = gold.answer.splitlines()
        off = [*lines[:-1], f"Answer: {int(gold.final) + 1}"]
        bad = corrupt_solution(gold.answer, rng).splitlines()
        s_gold, s_off, s_bad = prm.score_texts(example.prompt, [lines, off, bad])
        wins += s_gold[-1] > s_off[-1] and s_gold[-1] > s_bad[-1]
    assert wins >= 18, f"gold beat both corruptions on only {wins}/20 problems"
