"""The in-process engine: KV forking is exact, its three KV modes agree and count what they
encode, steps stop at the delimiter."""

from __future__ import annotations

import asyncio

import pytest
import torch

from burnish.errors import ConfigError
from burnish.scaling.engine import StepConfig
from burnish.scaling.hf_engine import KV_MODES, HFEngine, sample_tokens
from burnish.scaling.particles import Particle, Problem


def _grow(
    engine: HFEngine,
    problems: list[Problem],
    n: int,
    forks: list[list[int]],
    temperature: float = 1.0,
):
    """Start n particles per problem, then per round: extend, fork by index."""

    async def one(problem: Problem):
        parts = await engine.start(problem, n)
        for idx in forks:
            parts = await engine.extend(problem, parts, temperature)
            parts = [parts[i] for i in idx]
        return parts

    async def all_():
        return await asyncio.gather(*(one(p) for p in problems))

    return asyncio.run(all_())


def _prefix(engine: HFEngine, problem: Problem, p: Particle) -> int:
    """Tokens a fresh row for ``p`` costs: its prompt plus every token it generated."""
    return len(engine.prompt_ids(problem.prompt)) + len(p.token_ids)


@pytest.mark.parametrize("kv_mode", ["fork", "reprefill"])
def test_forked_particle_continues_like_reencoding(policy, kv_mode) -> None:
    """Next-token logits held for a forked (or re-prefilled) particle, batched across two
    problems of different prompt lengths, with masked holes from early-stopping rows, equal a
    clean forward pass of its full prefix, to 1e-4 absolute in fp32 (observed ~1e-6)."""
    model, tok = policy
    engine = HFEngine(model, tok, StepConfig(max_step_tokens=12), kv_mode=kv_mode)
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


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_kv_modes_give_the_same_particles(policy, temperature) -> None:
    """Same seeds, two problems batched together: forking, re-prefilling duplicates and
    re-encoding everything give the same particles; tokens encoded fork < reprefill < none,
    and the counted stateless baseline (``reencode``) is exactly what "none" encodes."""
    model, tok = policy
    forks = [[0, 0, 1, 2], [3, 3, 3, 0], [1, 0, 1, 2]]
    runs = {}
    for mode in KV_MODES:
        problems = [Problem("chain 7-2*3+4", seed=1), Problem("chain 9*2-5", seed=1)]
        engine = HFEngine(model, tok, kv_mode=mode)
        runs[mode] = (problems, _grow(engine, problems, 4, forks, temperature))
    want = [[(p.steps, p.token_ids, p.finish_reason) for p in ps] for ps in runs["fork"][1]]
    assert any(not p.finished for p in runs["fork"][1][0])  # the forks reached live particles
    for mode, (problems, out) in runs.items():
        assert [[(p.steps, p.token_ids, p.finish_reason) for p in ps] for ps in out] == want
        assert [q.usage.generated for q in problems] == [
            q.usage.generated for q in runs["fork"][0]
        ], mode
    for i in range(2):
        fork, reprefill, none = (runs[m][0][i].usage for m in ("fork", "reprefill", "none"))
        assert fork.encoded < reprefill.encoded < none.encoded
        assert fork.reencode == reprefill.reencode == none.reencode == none.encoded


def test_reprefill_reencodes_exactly_the_duplicated_prefixes(policy) -> None:
    """One step, then resampling keeps particles 0, 0, 1, 2 (particle 0 duplicated, 3 dropped).
    Forking encodes only the prompt; "reprefill" adds exactly particle 0's prefix once (the
    second copy's fresh row); "none" re-encodes every live prefix at every extension."""
    model, tok = policy
    usage, step1 = {}, {}
    for mode in KV_MODES:
        problem = Problem("chain 4+5*2-3", seed=2)
        engine = HFEngine(model, tok, kv_mode=mode)

        async def go(engine=engine, problem=problem):
            parts = await engine.extend(problem, await engine.start(problem, 4), 0.8)
            await engine.extend(problem, [parts[i] for i in (0, 0, 1, 2)], 0.8)
            return parts

        step1[mode], usage[mode] = asyncio.run(go()), problem.usage
    parts = step1["fork"]
    assert [p.token_ids for p in step1["none"]] == [p.token_ids for p in parts]
    assert not any(p.finished for p in parts[:3])
    prompt = len(engine.prompt_ids(problem.prompt))
    assert usage["fork"].prefill == prompt
    assert usage["reprefill"].prefill == prompt + _prefix(engine, problem, parts[0])
    again = [_prefix(engine, problem, parts[i]) for i in (0, 0, 1, 2)]
    assert usage["none"].prefill == 4 * prompt + sum(again)
    assert len({u.generated for u in usage.values()}) == 1


def test_reprefill_reencodes_a_row_a_child_already_continued(policy) -> None:
    """Extending the same particles twice (as particle Gibbs does with an old reference):
    the second time every row has been continued by a child, so "reprefill" re-encodes every
    live prefix, "fork" none, and both give the same particles."""
    model, tok = policy
    out, usage = {}, {}
    for mode in ("fork", "reprefill"):
        problem = Problem("chain 6*3-8", seed=4)
        engine = HFEngine(model, tok, kv_mode=mode)

        async def go(engine=engine, problem=problem):
            parts = await engine.extend(problem, await engine.start(problem, 3), 0.8)
            await engine.extend(problem, parts, 0.8)
            return parts, await engine.extend(problem, parts, 0.8)

        out[mode], usage[mode] = asyncio.run(go()), problem.usage
    parts, again = out["reprefill"]
    assert [p.token_ids for p in again] == [p.token_ids for p in out["fork"][1]]
    live = [p for p in parts if not p.finished]
    assert live
    extra = sum(_prefix(engine, problem, p) for p in live)
    assert usage["reprefill"].prefill == usage["fork"].prefill + extra


def test_unknown_kv_mode_is_refused(tiny_llama, char_tok) -> None:
    with pytest.raises(ConfigError, match="kv_mode 'copy'"):
        HFEngine(tiny_llama, char_tok, kv_mode="copy")  # type: ignore[arg-type]


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
