"""The in-process engine: KV forking is exact, steps stop at the delimiter, tokens counted."""

from __future__ import annotations

import asyncio

import torch

from burnish.scaling.engine import StepConfig
from burnish.scaling.hf_engine import HFEngine, sample_tokens
from burnish.scaling.particles import Problem


def _grow(engine: HFEngine, problems: list[Problem], n: int, forks: list[list[int]]):
    """Start n particles per problem, then per round: extend (temperature 1), fork by index."""

    async def one(problem: Problem):
        parts = await engine.start(problem, n)
        for idx in forks:
            parts = await engine.extend(problem, parts, 1.0)
            parts = [parts[i] for i in idx]
        return parts

    async def all_():
        return await asyncio.gather(*(one(p) for p in problems))

    return asyncio.run(all_())


def test_forked_particle_continues_like_reencoding(policy) -> None:
    """Next-token logits held for a forked particle (batched across two problems of different
    prompt lengths, with masked holes from early-stopping rows) equal a clean forward pass of
    its full prefix, to 1e-4 absolute in fp32 (observed ~1e-6)."""
    model, tok = policy
    engine = HFEngine(model, tok, StepConfig(max_step_tokens=12))
    problems = [Problem("chain 2*3*4-1", seed=0), Problem("chain 8+2-3*5", seed=0)]
    out = _grow(engine, problems, 4, [[2, 2, 0, 3], [1, 1, 3, 0]])
    checked = 0
    for problem, parts in zip(problems, out, strict=True):
        for p in parts:
            if p.finish_reason == "eos":
                continue
            ids = torch.tensor([engine.prompt_ids(problem.prompt) + list(p.token_ids)])
            with torch.no_grad():
                want = model(ids).logits[0, -1]
            torch.testing.assert_close(engine.next_token_logits(p), want, atol=1e-4, rtol=0)
            checked += 1
    assert checked >= 4
    assert len({len(p.token_ids) for ps in out for p in ps}) > 1  # rows of different lengths
    assert problems[0].usage.generated > 0 and problems[1].usage.prefill > 0


def test_fork_and_reencode_engines_agree(tiny_llama, char_tok) -> None:
    """Same seeds: forking and re-encoding produce the same particles; forking encodes fewer."""
    step = StepConfig(max_step_tokens=5)
    forks = [[0, 0, 1, 1], [3, 2, 1, 0], [0, 1, 1, 1]]
    a, b = Problem("chain 3+4", seed=1), Problem("chain 3+4", seed=1)
    fa = _grow(HFEngine(tiny_llama, char_tok, step, fork=True), [a], 4, forks)[0]
    fb = _grow(HFEngine(tiny_llama, char_tok, step, fork=False), [b], 4, forks)[0]
    assert [p.token_ids for p in fa] == [p.token_ids for p in fb]
    assert a.usage.generated == b.usage.generated
    assert a.usage.encoded < b.usage.encoded
    assert a.usage.reencode == b.usage.encoded  # the counted baseline is what re-encoding does


def test_steps_stop_at_delimiter_and_eos(tiny_llama, char_tok) -> None:
    eos, nl = char_tok.eos_token_id, char_tok("\n", add_special_tokens=False)["input_ids"][0]
    engine = HFEngine(tiny_llama, char_tok, StepConfig(max_step_tokens=40))
    problem = Problem("chain 5*5", seed=3)
    parts = _grow(engine, [problem], 8, [list(range(8))])[0]
    for p in parts:
        last = p.token_ids[-1]
        if p.finish_reason == "eos":
            assert last == eos
        elif p.finish_reason == "max_tokens":
            assert len(p.token_ids) == 40 and nl not in p.token_ids
        else:
            assert last == nl and p.token_ids.count(nl) == 1
        assert "\n" not in p.steps[0]


def test_sample_tokens_greedy_and_inverse_cdf() -> None:
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3], [0.2, 0.5, 0.3]]))
    tok, lp = sample_tokens(logits, torch.tensor([0.0, 1.0]), torch.tensor([0.99, 0.1]))
    assert tok.tolist() == [1, 0]  # greedy argmax; u=0.1 falls in the first bin (0.2)
    torch.testing.assert_close(lp, torch.log(torch.tensor([0.5, 0.2])))
    tok, _ = sample_tokens(logits[1:], torch.tensor([1.0]), torch.tensor([0.75]))
    assert tok.tolist() == [2]


def test_cross_problem_batching_is_one_forward_per_token(tiny_llama, char_tok) -> None:
    """Three problems extended together share forward passes (not three times as many)."""
    step = StepConfig(max_step_tokens=4)
    one = HFEngine(tiny_llama, char_tok, step)
    _grow(one, [Problem("chain 1+1", seed=0)], 2, [[0, 1]])
    three = HFEngine(tiny_llama, char_tok, step)
    _grow(three, [Problem(f"chain {i}+1", seed=0) for i in (1, 2, 3)], 2, [[0, 1]])
    assert three.forward_passes <= one.forward_passes + 1
