"""Limits that need their own server: a full queue (429), the request timeout (503), a client
that disconnects (its work is cancelled), SIGTERM draining, and a bounded load test."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import re
import signal
import threading
import time

import openai
import pytest
import torch
from tests.serve.conftest import MODEL, metric, subprocess_server, thread_server


def _body(**kw) -> bytes:
    return json.dumps({"model": MODEL, "prompt": "Q: 1+2=", "temperature": 0, **kw}).encode()


def _post(url: str, body: bytes, timeout: float = 60) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    status, data = r.status, json.loads(r.read())
    conn.close()
    return status, data


def _wait_for(check, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the server never reached the expected state"
        time.sleep(0.005)


def test_a_full_queue_answers_429(policy) -> None:
    model, tok = policy
    with thread_server(model, tok, max_batch=1, max_n=1, max_queue=1, max_tokens=400) as s:
        long = _body(max_tokens=400, ignore_eos=True)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            first = pool.submit(_post, s.url, long)
            _wait_for(lambda: s.engine.stats.running == 1)  # the first runs
            second = pool.submit(_post, s.url, long)
            _wait_for(lambda: s.engine.waiting == 1)  # the second waits in the queue
            third = _post(s.url, long)  # the third is refused
            assert s.engine.stats.running == 1, "the first finished too soon to test the queue"
            assert third[0] == 429 and third[1]["error"]["code"] == 429
            assert "busy" in third[1]["error"]["message"]
            assert first.result()[0] == 200 and second.result()[0] == 200


def test_the_request_timeout_cancels_and_answers_503(policy) -> None:
    model, tok = policy
    with thread_server(model, tok, request_timeout=0.2, max_tokens=500) as s:
        status, reply = _post(s.url, _body(max_tokens=500, ignore_eos=True))
        assert status == 503 and "0.2 s" in reply["error"]["message"]
        _wait_for(lambda: s.engine.stats.running == 0, timeout=10)


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_disconnects_cancels_its_work(policy, stream) -> None:
    model, tok = policy
    with thread_server(model, tok, max_tokens=500) as s:
        host, port = s.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        body = _body(max_tokens=500, ignore_eos=True, stream=stream)
        conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        if stream:
            r = conn.getresponse()
            assert r.readline().startswith(b"data: ")
        else:
            _wait_for(lambda: s.engine.stats.running == 1, timeout=10)
        conn.sock.shutdown(2)
        conn.close()
        _wait_for(lambda: s.engine.stats.running == 0, timeout=10)
        made = s.engine.stats.generation_tokens
        assert made < 450  # far from the 500 asked for
        time.sleep(0.3)
        assert s.engine.stats.generation_tokens == made


def test_load_32_concurrent_clients_get_their_unbatched_answers(policy) -> None:
    """Bounded: 32 requests of at most 24 tokens, loopback only, a 120 s budget."""
    model, tok = policy
    prompts = [f"Q: {i}+{2 * i + 1}-{i % 5}=" for i in range(32)]
    with thread_server(model, tok, max_batch=32) as s:
        client = openai.OpenAI(base_url=s.base, api_key="none", max_retries=0, timeout=120)

        def ask(p: str):
            return client.completions.create(model=MODEL, prompt=p, max_tokens=24, temperature=0)

        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            replies = list(pool.map(ask, prompts))
        assert time.monotonic() - start < 120
        assert max(s.engine.stats.batch_counts[3:]) > 0  # rows were batched (> 4 together)
    for p, r in zip(prompts, replies, strict=True):
        x = torch.tensor([tok(p)["input_ids"]])
        with torch.no_grad():
            ref = model.generate(
                x, max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id
            )
        assert r.choices[0].text == tok.decode(ref[0, x.shape[1] :], skip_special_tokens=True)
        assert r.choices[0].finish_reason in ("stop", "length")


def test_sigterm_drains_requests_in_flight_and_exits_143() -> None:
    with subprocess_server("--drain-timeout", "30") as s:
        result: dict = {}

        def long_request() -> None:
            result["reply"] = _post(s.url, _body(max_tokens=300, ignore_eos=True))

        t = threading.Thread(target=long_request)
        t.start()
        _wait_for(lambda: metric(s, "burnish_running_choices") == 1)
        s.proc.send_signal(signal.SIGTERM)
        t.join(timeout=60)
        assert s.proc.wait(timeout=60) == 143
        status, reply = result["reply"]
        assert status == 200 and reply["choices"][0]["finish_reason"] == "length"
        assert reply["usage"]["completion_tokens"] == 300
        assert "SIGTERM" in s.proc.stderr.read()
        with pytest.raises(OSError):
            _post(s.url, _body(max_tokens=1), timeout=5)


def test_other_hosts_get_a_warning_and_port_zero_says_which_port() -> None:
    import subprocess
    import sys

    from tests.serve.conftest import wait_healthy

    cmd = [sys.executable, "-m", "burnish", "serve", MODEL, "--host", "0.0.0.0", "--port", "0"]
    proc = subprocess.Popen([*cmd, "--log-level", "warning"], stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        while not lines or "serving" not in lines[-1]:
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        port = int(re.search(r"http://0\.0\.0\.0:(\d+)", lines[-1]).group(1))
        assert port > 0
        wait_healthy(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "reachable from other machines and has no --api-key" in "".join(lines)


def test_a_port_in_use_is_one_clear_error() -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-m", "burnish", "serve", MODEL, "--port", str(port)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert done.stderr.count("error:") == 1
