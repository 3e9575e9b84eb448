"""Inference-time scaling as a service: chat requests with ``budget`` run a search on the
serving engine; the step engine over it matches the in-process one."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import openai
import pytest
from tests.serve.conftest import MODEL, greedy, subprocess_server

from burnish.scaling.engine import StepConfig
from burnish.scaling.hf_engine import HFEngine
from burnish.serve.engine import ServeEngine
from burnish.serve.its import ServeStepEngine

PROMPT = "chain 12+7-4"


def test_step_engine_over_the_server_engine_equals_in_process(policy) -> None:
    model, tok = policy
    serve = ServeEngine(model, tok)
    try:
        steps = ServeStepEngine(serve, tok, StepConfig())
        for prompt in (PROMPT, "chain 2*3*4-1"):
            got = asyncio.run(greedy(steps, prompt))
            want = asyncio.run(greedy(HFEngine(model, tok), prompt))
            assert got.steps == want.steps and got.finish_reason == want.finish_reason
            assert got.token_ids == want.token_ids
            for a, b in zip(got.step_logprobs, want.step_logprobs, strict=True):
                assert abs(a - b) < 1e-4
    finally:
        serve.close()


@pytest.fixture(scope="module")
def its_server():
    with subprocess_server("--prm", "arith-prm", "--max-budget", "8") as s:
        yield s


@pytest.fixture(scope="module")
def its_client(its_server):
    return openai.OpenAI(base_url=its_server.base, api_key="none", max_retries=0, timeout=300)


def _ask(client, **extra):
    return client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        temperature=0.8,
        seed=1,
        extra_body=extra,
    )


def test_a_budget_runs_the_search_and_returns_its_record(its_client) -> None:
    r = _ask(its_client, budget=4)
    its = r.model_extra["its"]
    assert its["algorithm"] == "particle_filtering" and its["budget"] == 4
    assert r.choices[0].message.content == its["text"]
    assert len(its["particles"]) == 4 and its["history"]
    assert r.usage.completion_tokens == its["tokens"]["generated"] > 0
    again = _ask(its_client, budget=4)
    assert again.model_extra["its"]["text"] == its["text"]  # same seed, same search


def test_its_algorithm_and_streaming(its_client) -> None:
    r = _ask(its_client, budget=3, its_algorithm="self_consistency")
    assert r.model_extra["its"]["algorithm"] == "self_consistency"
    stream = its_client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        temperature=0.8,
        seed=1,
        stream=True,
        extra_body={"budget": 4},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = [c for c in chunks if c.choices][-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["its"]["text"] == text
    assert text == _ask(its_client, budget=4).choices[0].message.content


@pytest.mark.parametrize(
    ("extra", "status", "words"),
    [
        ({"budget": 9}, 400, "limit of 8"),
        ({"budget": 2, "its_algorithm": "nope"}, 400, "unknown algorithm"),
        ({"its_algorithm": "pf"}, 422, "needs a budget"),
        ({"budget": 2, "n": 2}, 422, "n must be 1"),
    ],
)
def test_search_requests_are_checked(its_server, extra, status, words) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], **extra}
    req = urllib.request.Request(
        its_server.base + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert e.value.code == status
    assert words in json.loads(e.value.read())["error"]["message"]


def test_a_reward_search_needs_a_prm(client) -> None:
    with pytest.raises(openai.BadRequestError, match="without --prm"):
        _ask(client, budget=2)
    r = _ask(client, budget=2, its_algorithm="greedy")
    assert r.model_extra["its"]["algorithm"] == "greedy"
