"""The serving engine in-process: continuous batching gives each request its unbatched answer,
stop strings, seeds, n, cancellation, prompt log-probs and quantized caches."""

from __future__ import annotations

import asyncio

import pytest
import torch

from burnish.serve.engine import Delta, SamplingParams, ServeEngine, _find_stop, _safe_end

PROMPTS = [f"Q: {a}+{b}-{c}=" for a, b, c in [(1, 2, 3), (12, 7, 4), (30, 1, 9), (5, 5, 5)]]


@pytest.fixture(scope="module")
def engine(policy):
    model, tok = policy
    eng = ServeEngine(model, tok, max_batch=16)
    yield eng
    eng.close()


def ids(tok, text: str) -> list[int]:
    return list(tok(text)["input_ids"])


async def collect(stream) -> tuple[list[str], list[str | None], list]:
    n = stream.params.n
    texts, reasons, prompt = [""] * n, [None] * n, None
    async for ev in stream:
        if isinstance(ev, Delta):
            texts[ev.index] += ev.text
            reasons[ev.index] = ev.finish_reason or reasons[ev.index]
        else:
            prompt = ev
    return texts, reasons, prompt


def run(engine, prompts: list[list[int]], params: SamplingParams) -> list:
    async def go():
        return await asyncio.gather(*(collect(engine.submit(p, params)) for p in prompts))

    return asyncio.run(go())


def staggered(engine, prompts: list[list[int]], params: SamplingParams) -> list:
    """Submit ``prompts`` 20 ms apart (each joins while the earlier ones decode)."""

    async def go():
        tasks = []
        for p in prompts:
            tasks.append(asyncio.create_task(collect(engine.submit(p, params))))
            await asyncio.sleep(0.02)
        return await asyncio.gather(*tasks)

    return asyncio.run(go())


def greedy_reference(model, tok, prompt: str, max_new: int) -> str:
    x = torch.tensor([ids(tok, prompt)])
    with torch.no_grad():
        out = model.generate(
            x, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id
        )
    return tok.decode(out[0, x.shape[1] :], skip_special_tokens=True)


def test_concurrent_requests_get_their_unbatched_greedy_answers(engine, policy) -> None:
    model, tok = policy
    params = SamplingParams(max_tokens=24, temperature=0)
    batched = run(engine, [ids(tok, p) for p in PROMPTS], params)
    for p, (texts, reasons, _) in zip(PROMPTS, batched, strict=True):
        assert texts[0] == greedy_reference(model, tok, p, 24)
        assert reasons[0] in ("stop", "length")
    assert max(engine.stats.batch_counts[2:]) > 0  # some steps decoded several rows


def test_a_request_joining_mid_generation_gets_its_alone_answer(engine, policy) -> None:
    model, tok = policy
    long = SamplingParams(max_tokens=120, temperature=0, ignore_eos=True)
    short = SamplingParams(max_tokens=20, temperature=0)

    async def go():
        first = asyncio.create_task(collect(engine.submit(ids(tok, PROMPTS[0]), long)))
        await asyncio.sleep(0.05)  # the long request is decoding when the short one arrives
        second = await collect(engine.submit(ids(tok, PROMPTS[1]), short))
        return await first, second

    (long_texts, _, _), (short_texts, _, _) = asyncio.run(go())
    assert short_texts[0] == greedy_reference(model, tok, PROMPTS[1], 20)
    alone = run(engine, [ids(tok, PROMPTS[0])], long)[0][0][0]
    assert long_texts[0] == alone


def test_stop_strings_end_the_choice_and_are_not_in_the_text(engine, policy) -> None:
    _, tok = policy
    full = run(engine, [ids(tok, PROMPTS[1])], SamplingParams(max_tokens=40, temperature=0))
    text = full[0][0][0]
    assert "\n" in text
    stop = SamplingParams(max_tokens=40, temperature=0, stop=("\n",))
    texts, reasons, _ = run(engine, [ids(tok, PROMPTS[1])], stop)[0]
    assert texts[0] == text.split("\n")[0]
    assert reasons[0] == "stop"


def test_length_is_the_finish_reason_at_max_tokens(engine, policy) -> None:
    _, tok = policy
    params = SamplingParams(max_tokens=3, temperature=0, ignore_eos=True)
    texts, reasons, _ = run(engine, [ids(tok, PROMPTS[2])], params)[0]
    assert reasons == ["length"] and len(tok(texts[0], add_special_tokens=False)["input_ids"]) <= 3


def test_same_seed_same_samples_and_n_choices_differ(engine, policy) -> None:
    _, tok = policy
    params = SamplingParams(max_tokens=30, temperature=1.5, n=4, seed=7, ignore_eos=True)
    prompt = ids(tok, PROMPTS[3])
    a, b = run(engine, [prompt, prompt], params)
    assert a[0] == b[0]
    assert len(set(a[0])) > 1
    other = run(engine, [prompt], SamplingParams(**{**params.__dict__, "seed": 8}))[0]
    assert other[0] != a[0]


def test_a_cancelled_request_leaves_the_batch(engine, policy) -> None:
    _, tok = policy
    params = SamplingParams(max_tokens=400, temperature=0, ignore_eos=True)

    async def go():
        stream = engine.submit(ids(tok, PROMPTS[0]), params)
        got = 0
        async for ev in stream:
            got += ev.count
            if got == 5:
                stream.cancel()
                break
        before = engine.stats.generation_tokens
        await asyncio.sleep(0.3)
        return before, engine.stats.generation_tokens

    before, after = asyncio.run(go())
    assert after - before <= 2  # at most the step in flight
    assert engine.stats.running == 0


def test_prompt_logprobs_match_the_model(engine, policy) -> None:
    model, tok = policy
    prompt = ids(tok, PROMPTS[1])
    params = SamplingParams(max_tokens=1, temperature=0, prompt_logprobs=2)
    _, _, infos = run(engine, [prompt], params)[0]
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([prompt])).logits[0].float(), -1)
    assert infos[0] is None and len(infos) == len(prompt)
    for t in range(1, len(prompt)):
        assert abs(infos[t].logprob - float(lp[t - 1, prompt[t]])) < 1e-4
        assert infos[t].top[0][0] == int(lp[t - 1].argmax())
        assert infos[t].rank == int((lp[t - 1] > lp[t - 1, prompt[t]]).sum()) + 1


@pytest.mark.parametrize("kv", ["kivi", "squat", "squat_pre"])
def test_quantized_caches_serve_joining_requests_as_alone(policy, kv) -> None:
    """Requests arriving while others decode are merged into the running quantized batch
    (``absorb``); each still gets its alone answer."""
    model, tok = policy
    eng = ServeEngine(model, tok, kv_cache=kv, kv_bits=2, max_batch=16)
    try:
        params = SamplingParams(max_tokens=60, temperature=0, ignore_eos=True)
        prompts = [ids(tok, p) for p in PROMPTS]

        together = staggered(eng, prompts, params)
        merged_steps = eng.stats.batch_counts[2:]
        alone = [run(eng, [p], params)[0] for p in prompts]
        assert [t[0] for t in together] == [a[0] for a in alone]
        assert max(merged_steps) > 0  # rows that joined were decoded together
    finally:
        eng.close()
    assert model.config._attn_implementation == "sdpa"  # restored


def test_stop_search_and_holdback() -> None:
    assert _find_stop("abc\ndef", ("\n",), 0) == (3, "\n")
    assert _find_stop("abXYc", ("XY", "b"), 0) == (1, "b")
    assert _find_stop("abc", (), 0) is None
    assert _safe_end("hello wor", ("world",)) == len("hello ")
    assert _safe_end("abc\ufffd", ()) == 3
    assert _safe_end("abc", ("zz",)) == 3


def test_bad_engine_options_are_config_errors(policy) -> None:
    from burnish.errors import ConfigError

    model, tok = policy
    with pytest.raises(ConfigError, match="max_batch"):
        ServeEngine(model, tok, max_batch=0)
    with pytest.raises(ConfigError):
        ServeEngine(model, tok, kv_cache="nope")


def test_closing_fails_waiting_and_new_requests(policy) -> None:
    from burnish.serve.engine import EngineClosedError

    model, tok = policy
    eng = ServeEngine(model, tok, max_batch=1)
    params = SamplingParams(max_tokens=300, temperature=0, ignore_eos=True)

    async def go():
        running = eng.submit(ids(tok, PROMPTS[0]), params)
        waiting = eng.submit(ids(tok, PROMPTS[1]), params)  # no batch slot: it waits
        await asyncio.sleep(0.05)
        await asyncio.to_thread(eng.close)
        outcomes = []
        for stream in (running, waiting):
            try:
                await asyncio.wait_for(collect(stream), timeout=10)
                outcomes.append("finished")
            except EngineClosedError:
                outcomes.append("closed")
        with pytest.raises(EngineClosedError):
            eng.submit(ids(tok, PROMPTS[2]), params)
        return outcomes

    assert asyncio.run(go()) == ["closed", "closed"]


@pytest.mark.parametrize("kv", ["none", "kivi"])
def test_a_model_with_skipped_attention_serves_joining_requests_as_alone(kv) -> None:
    """Hopscotch: a skipped layer's cache slot is a DummyLayer, which merging and trimming
    rows keep as it is (fp and quantized batches)."""
    from tests.serve.conftest import MODEL

    from burnish.models import load_model
    from burnish.models.skipping import scaled_layers, wrap_scaled
    from burnish.models.zoo import resolve_model

    model, tok = load_model(resolve_model(MODEL))
    wrap_scaled(model)
    scaled_layers(model)[0].skip_attention = True
    eng = ServeEngine(model, tok, kv_cache=kv, kv_bits=4, max_batch=16)
    try:
        params = SamplingParams(max_tokens=30, temperature=0, ignore_eos=True)
        prompts = [ids(tok, p) for p in PROMPTS]

        together = staggered(eng, prompts, params)
        alone = [run(eng, [p], params)[0] for p in prompts]
        assert [t[0] for t in together] == [a[0] for a in alone]
    finally:
        eng.close()
    if kv == "none":
        assert alone[0][0][0] == greedy_reference(model, tok, PROMPTS[0], 30)
