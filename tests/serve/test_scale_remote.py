"""Inference-time scaling through ``burnish serve``: the OpenAI engine on both endpoints
against the in-process engine, and ``burnish scale --engine URL`` against in-process runs."""

from __future__ import annotations

import asyncio
import json

import pytest
from tests.serve.conftest import KEY, MODEL, greedy

from burnish.cli import main
from burnish.scaling.engine import StepConfig
from burnish.scaling.hf_engine import HFEngine
from burnish.scaling.openai_engine import OpenAIEngine

PROMPTS = ["chain 2*3*4-1", "chain 12+7-4", "chain 9-3+8"]


def _render(tok):
    return lambda p: tok.apply_chat_template(
        [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
    )


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_greedy_steps_through_the_server_equal_in_process(server, policy, endpoint) -> None:
    model, tok = policy
    render = _render(tok) if endpoint == "completions" else None
    remote = OpenAIEngine(server.url, MODEL, render, endpoint=endpoint, api_key=KEY)
    local = HFEngine(model, tok, StepConfig())
    for prompt in PROMPTS:
        got, want = asyncio.run(greedy(remote, prompt)), asyncio.run(greedy(local, prompt))
        assert got.steps == want.steps
        assert got.finish_reason == want.finish_reason
        for a, b in zip(got.step_logprobs, want.step_logprobs, strict=True):
            assert abs(a - b) < 1e-4  # the server's logprobs are what --prm logprob scores


def _scale(capsys, out, *args: str) -> dict:
    rc = main(["scale", *args, "--n", "12", "--output", str(out), "--seed", "3"])
    assert rc == 0, capsys.readouterr()
    return json.loads(out.with_name(out.name + ".summary.json").read_text())


def _texts(path) -> list[str]:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return [r["text"] for r in sorted(rows, key=lambda r: r["index"])]


def test_burnish_scale_through_burnish_serve(server, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BURNISH_API_KEY", KEY)
    monkeypatch.setenv("BURNISH_CACHE", str(tmp_path / "cache"))
    remote = ["--engine", server.url, "--model", MODEL]
    greedy_algo = ["--algo", "greedy", "--budget", "1"]
    a = _scale(capsys, tmp_path / "remote.jsonl", *remote, *greedy_algo)
    b = _scale(capsys, tmp_path / "local.jsonl", MODEL, *greedy_algo)
    assert _texts(tmp_path / "remote.jsonl") == _texts(tmp_path / "local.jsonl")
    assert a["accuracy"] == b["accuracy"]
    pf = ["--algo", "pf", "--budget", "4", "--prm", "logprob"]
    c = _scale(capsys, tmp_path / "remote_pf.jsonl", *remote, *pf)
    d = _scale(capsys, tmp_path / "local_pf.jsonl", MODEL, *pf)
    assert abs(c["accuracy"] - d["accuracy"]) <= 0.34  # 12 problems: within sampling noise


def test_scale_engine_needs_a_model_name(capsys, tmp_path) -> None:
    rc = main(["scale", "--engine", "http://127.0.0.1:9", "--output", str(tmp_path / "x")])
    assert rc == 2 and "--model NAME" in capsys.readouterr().err
