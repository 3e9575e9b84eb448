"""``burnish serve`` in a subprocess, called with the official ``openai`` client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest
import torch
from tests.serve.conftest import KEY, MODEL, metric

CHAT = [{"role": "user", "content": "chain 12+7-4"}]


def post(server, path: str, body: bytes | dict, key: str | None = KEY) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(server.url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_models_and_health(server, client) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    with urllib.request.urlopen(server.url + "/health", timeout=10) as r:
        assert r.status == 200


def test_tokenize_counts_with_the_served_tokenizer(server, policy) -> None:
    _, tok = policy
    status, body = post(server, "/tokenize", {"model": MODEL, "prompt": "add 2+3"})
    assert status == 200 and body["tokens"] == tok("add 2+3")["input_ids"]
    assert body["count"] == len(body["tokens"]) and body["max_model_len"] > 0
    status, body = post(server, "/tokenize", {"model": "other", "prompt": "x"})
    assert status == 404 and "does not exist" in body["error"]["message"]
    assert post(server, "/tokenize", {"prompt": "x"}, key=None)[0] == 401


def test_completion_shape_and_usage(client, policy) -> None:
    _, tok = policy
    r = client.completions.create(model=MODEL, prompt="Q: 3+4=", max_tokens=8, temperature=0)
    assert r.object == "text_completion" and len(r.choices) == 1
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens == len(tok("Q: 3+4=")["input_ids"])
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_streaming_concatenates_to_the_unstreamed_text(client) -> None:
    full = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=60, temperature=0)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=CHAT,
        max_tokens=60,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, reasons = "", None, []
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            reasons.append(c.finish_reason)
    assert text == full.choices[0].message.content and text
    assert usage == full.usage
    assert reasons[-1] == full.choices[0].finish_reason


def test_completion_streaming_concatenates_too(client) -> None:
    kw = {"model": MODEL, "prompt": "Q: 12+30=", "max_tokens": 30, "temperature": 0}
    full = client.completions.create(**kw).choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(**kw, stream=True))
    assert streamed == full


def test_echo_logprobs_equal_the_model(client, policy) -> None:
    model, tok = policy
    prompt = "Q: 8+9-2="
    r = client.completions.create(
        model=MODEL, prompt=prompt, max_tokens=6, temperature=0, logprobs=3, echo=True
    )
    c = r.choices[0]
    n_prompt = len(tok(prompt)["input_ids"])
    assert c.text.startswith(prompt)
    assert c.logprobs.token_logprobs[0] is None and c.logprobs.top_logprobs[0] is None
    gen = tok(c.text[len(prompt) :], add_special_tokens=False)["input_ids"]
    seq = tok(prompt)["input_ids"] + gen
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([seq])).logits[0].float(), -1)
    served = c.logprobs.token_logprobs[1 : len(seq)]
    for t, value in enumerate(served, start=1):
        assert abs(value - float(lp[t - 1, seq[t]])) < 1e-4
    assert len(c.logprobs.tokens) >= n_prompt
    assert all(len(top) <= 3 for top in c.logprobs.top_logprobs[1:])
    assert c.logprobs.text_offset[:2] == [0, len(c.logprobs.tokens[0])]


def test_chat_logprobs_and_prompt_logprobs(client) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=CHAT,
        max_tokens=5,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
        extra_body={"prompt_logprobs": 1},
    )
    content = r.choices[0].logprobs.content
    assert content and all(len(t.top_logprobs) == 2 for t in content)
    assert all(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob for t in content)
    greedy_top = [t.top_logprobs[0].token for t in content]
    assert greedy_top == [t.token for t in content]  # temperature 0 takes the top token
    prompt_lp = r.model_extra["prompt_logprobs"]
    assert prompt_lp[0] is None and len(prompt_lp) == r.usage.prompt_tokens


def test_n_seed_and_stop(client) -> None:
    kw = {"model": MODEL, "messages": CHAT, "max_tokens": 40, "temperature": 1.2, "n": 3}
    a = client.chat.completions.create(**kw, seed=11)
    b = client.chat.completions.create(**kw, seed=11)
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    full = client.completions.create(model=MODEL, prompt="Q: 5+6=", max_tokens=30, temperature=0)
    assert "\n" in full.choices[0].text
    cut = client.completions.create(
        model=MODEL, prompt="Q: 5+6=", max_tokens=30, temperature=0, stop=["\n"]
    )
    assert cut.choices[0].text == full.choices[0].text.split("\n")[0]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].model_extra["stop_reason"] == "\n"


def test_auth_is_required(server) -> None:
    bad = openai.OpenAI(base_url=server.base, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.base + "/models", timeout=10)
    assert e.value.code == 401
    assert json.loads(e.value.read())["error"]["type"] == "AuthenticationError"
    status, _ = post(server, "/v1/completions", {"model": MODEL, "prompt": "x"}, key=None)
    assert status == 401


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"model": "other", "prompt": "x"}, 404, "does not exist"),
        ({"model": MODEL, "prompt": "x", "max_tokens": 129}, 400, "limit of 128"),
        ({"model": MODEL, "prompt": "x", "n": 5}, 400, "limit of 4"),
        ({"model": MODEL, "prompt": "x" * 400}, 400, "at most 300"),
        ({"model": MODEL, "prompt": "x", "max_tokens": 0}, 422, "max_tokens"),
        ({"model": MODEL, "prompt": "x", "temperature": "hot"}, 422, "temperature"),
        ({"model": MODEL, "prompt": "x", "logit_bias": {"1": 2}}, 422, "logit_bias"),
        ({"model": MODEL, "prompt": "x", "presence_penalty": 1}, 422, "penalties"),
        ({"model": MODEL}, 422, "prompt"),
    ],
)
def test_errors_have_the_openai_shape(server, body, status, words) -> None:
    got, reply = post(server, "/v1/completions", body)
    assert got == status
    assert set(reply) == {"error"}
    assert reply["error"]["code"] == status and words in reply["error"]["message"]
    assert reply["error"]["type"]


def test_body_size_and_bad_json(server) -> None:
    status, reply = post(server, "/v1/completions", {"model": MODEL, "prompt": "x" * 30000})
    assert status == 413 and "limit" in reply["error"]["message"]
    status, reply = post(server, "/v1/completions", b"{not json")
    assert status == 422 and reply["error"]["code"] == 422
    status, reply = post(server, "/v1/nowhere", {})
    assert status == 404 and "error" in reply


def test_chat_template_errors_and_context_limit(server) -> None:
    status, reply = post(server, "/v1/chat/completions", {"model": MODEL, "messages": []})
    assert status == 422
    long = [{"role": "user", "content": "1+" * 200}]
    status, reply = post(server, "/v1/chat/completions", {"model": MODEL, "messages": long})
    assert status == 400 and "prompt" in reply["error"]["message"]


def test_metrics_count_requests_and_tokens(server, client) -> None:
    client.completions.create(model=MODEL, prompt="Q: 1+1=", max_tokens=4, temperature=0)
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    for name in (
        'burnish_requests_total{endpoint="/v1/completions",status="200"}',
        "burnish_generation_tokens_total",
        "burnish_request_latency_seconds_bucket",
        "burnish_queue_depth",
        "burnish_batch_size_bucket",
    ):
        assert name in text


def test_a_disconnected_stream_stops_generating(server) -> None:
    import http.client
    import time

    before = metric(server, "burnish_generation_tokens_total")
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = {"model": MODEL, "prompt": "Q: 1+2=", "max_tokens": 128, "ignore_eos": True}
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    conn.request("POST", "/v1/completions", json.dumps({**body, "stream": True}), headers)
    assert conn.getresponse().readline().startswith(b"data: ")
    conn.sock.shutdown(2)
    conn.close()
    deadline = time.monotonic() + 10
    while metric(server, "burnish_running_choices") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(server, "burnish_running_choices") == 0
    made = metric(server, "burnish_generation_tokens_total") - before
    assert made < 110  # short of the 128 asked for
