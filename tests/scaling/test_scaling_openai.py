"""The OpenAI-compatible engine against a real HTTP server on loopback serving a zoo model."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from burnish.scaling.engine import EngineError, StepConfig
from burnish.scaling.hf_engine import HFEngine
from burnish.scaling.openai_engine import OpenAIEngine
from burnish.scaling.particles import Problem


def _serve(model, tok, fail_first: int = 0, stop_reason: bool = True):
    """A minimal /v1/completions server (greedy or seeded sampling, stop strings, EOS);
    ``stop_reason=False`` answers as OpenAI's own API does (``finish_reason`` only)."""
    lock, state = threading.Lock(), {"fail": fail_first, "calls": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                state["calls"] += 1
                if state["fail"] > 0:
                    state["fail"] -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                reply = _complete(model, tok, body)
                if not stop_reason:
                    del reply["choices"][0]["stop_reason"]
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state


@torch.no_grad()
def _complete(model, tok, body: dict) -> dict:
    ids = tok(body["prompt"], add_special_tokens=False)["input_ids"]
    gen = torch.Generator().manual_seed(int(body.get("seed", 0)))
    out, reason, stop_reason = [], "length", None
    for _ in range(body["max_tokens"]):
        logits = model(torch.tensor([ids + out])).logits[0, -1]
        if body["temperature"] > 0:
            probs = torch.softmax(logits / body["temperature"], -1)
            nxt = int(torch.multinomial(probs, 1, generator=gen))
        else:
            nxt = int(logits.argmax())
        if nxt == tok.eos_token_id:
            reason = "stop"
            break
        out.append(nxt)
        text = tok.decode(out)
        hit = next((s for s in body["stop"] if s in text), None)
        if hit is not None:
            reason, stop_reason = "stop", hit
            break
    text = tok.decode(out)
    if stop_reason:
        text = text.split(stop_reason)[0]
    return {
        "choices": [{"text": text, "finish_reason": reason, "stop_reason": stop_reason}],
        "usage": {"prompt_tokens": len(ids), "completion_tokens": len(out)},
    }


def _render(tok):
    return lambda p: tok.apply_chat_template(
        [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
    )


async def _greedy(engine, prompt: str):
    problem = Problem(prompt)
    parts = await engine.start(problem, 1)
    while not parts[0].finished:
        parts = await engine.extend(problem, parts, 0.0)
    return parts[0], problem


def test_openai_engine_matches_in_process_engine(policy) -> None:
    model, tok = policy
    server, state = _serve(model, tok, fail_first=1)  # first request gets a 503: retried
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        remote = OpenAIEngine(url, "arith-policy", _render(tok), concurrency=2, backoff=0.01)
        got, problem = asyncio.run(_greedy(remote, "chain 2*3*4-1"))
        want, _ = asyncio.run(_greedy(HFEngine(model, tok), "chain 2*3*4-1"))
        assert got.steps == want.steps and len(got.steps) >= 2
        assert got.finish_reason == want.finish_reason == "eos"
        assert remote.requests_sent == state["calls"] == len(got.steps) + 1
        assert problem.usage.prefill > 0 and problem.usage.generated > 0
    finally:
        server.shutdown()


def test_a_server_without_stop_reason_still_ends_at_eos(policy) -> None:
    """Without vLLM's stop_reason an EOS looks like the delimiter; the empty step after it
    is read as the end, so the particle does not repeat to max_steps."""
    model, tok = policy
    server, state = _serve(model, tok, stop_reason=False)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        remote = OpenAIEngine(url, "arith-policy", _render(tok), step=StepConfig(max_steps=12))
        got, _ = asyncio.run(_greedy(remote, "chain 2*3*4-1"))
        want, _ = asyncio.run(_greedy(HFEngine(model, tok), "chain 2*3*4-1"))
        assert got.finish_reason in ("eos", "answer")
        assert [s for s in got.steps if s] == [s for s in want.steps if s]
        assert state["calls"] <= len(want.steps) + 2
    finally:
        server.shutdown()


def test_concurrent_particles_are_seeded(policy) -> None:
    model, tok = policy
    server, _ = _serve(model, tok)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"

        async def run():
            eng = OpenAIEngine(url, "m", _render(tok), step=StepConfig(), concurrency=3)
            problem = Problem("chain 8+2-3", seed=5)
            return await eng.extend(problem, await eng.start(problem, 4), 1.0)

        a, b = asyncio.run(run()), asyncio.run(run())
        assert [p.steps for p in a] == [p.steps for p in b]
    finally:
        server.shutdown()


def test_unreachable_endpoint_is_a_clear_error() -> None:
    with socket.socket() as s:  # a free port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    eng = OpenAIEngine(f"http://127.0.0.1:{port}", "m", retries=2, backoff=0.01, timeout=2)
    with pytest.raises(EngineError, match=r"after 3 attempt\(s\).*OpenAI-compatible server"):
        asyncio.run(_greedy(eng, "chain 1+1"))


def test_logprob_scoring_refuses_a_server_without_logprobs(policy) -> None:
    """The minimal server above returns no log-probabilities: --prm logprob must say so rather
    than rank particles on zeros."""
    from burnish.errors import ConfigError
    from burnish.scaling.reward import LogProbReward

    model, tok = policy
    server, _ = _serve(model, tok)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        remote = OpenAIEngine(url, "arith-policy", _render(tok))
        got, _ = asyncio.run(_greedy(remote, "chain 2*3*4-1"))
        assert any(x != x for x in got.step_logprobs)  # NaN: no logprobs came back
        with pytest.raises(ConfigError, match="no token log-probabilities"):
            asyncio.run(LogProbReward().score("chain 2*3*4-1", [got]))
    finally:
        server.shutdown()
