"""``burnish serve``'s engine on the real SmolLM2-135M-Instruct (BPE, ChatML, GQA, tied
embeddings): concurrent chat requests get their unbatched greedy answers, with the fp cache
and with a 2-bit SQuat cache."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from burnish.data.corpus import corpus_blocks
from burnish.models import load_model
from burnish.models.io import chat_text
from burnish.serve.engine import Delta, SamplingParams, ServeEngine

pytestmark = pytest.mark.real

QUESTIONS = ["What is the capital of France?", "Name a prime number.", "Say hello in French."]


def _prompt(tok, question: str) -> list[int]:
    text = chat_text(tok, [{"role": "user", "content": question}], True)
    return list(tok(text, add_special_tokens=False)["input_ids"])


async def _collect(stream) -> tuple[str, str | None]:
    text, reason = "", None
    async for ev in stream:
        if isinstance(ev, Delta):
            text, reason = text + ev.text, ev.finish_reason or reason
    return text, reason


def _serve(engine, prompts, params) -> list[tuple[str, str | None]]:
    async def go():
        tasks = []
        for p in prompts:  # staggered: later requests join a running batch
            tasks.append(asyncio.create_task(_collect(engine.submit(p, params))))
            await asyncio.sleep(0.05)
        return await asyncio.gather(*tasks)

    return asyncio.run(go())


def test_concurrent_chat_requests_get_their_greedy_answers(smollm2: Path) -> None:
    model, tok = load_model(smollm2)
    prompts = [_prompt(tok, q) for q in QUESTIONS]
    engine = ServeEngine(model, tok)
    try:
        got = _serve(engine, prompts, SamplingParams(max_tokens=10, temperature=0))
    finally:
        engine.close()
    for p, (text, reason) in zip(prompts, got, strict=True):
        with torch.no_grad():
            ref = model.generate(torch.tensor([p]), max_new_tokens=10, do_sample=False)
        assert text == tok.decode(ref[0, len(p) :], skip_special_tokens=True)
        assert reason in ("stop", "length")


def test_a_2bit_squat_cache_serves_joining_requests_as_alone(smollm2: Path) -> None:
    """Prompts of real text past G + R = 64 tokens, so keys are quantized at the prefill."""
    model, tok = load_model(smollm2)
    blocks = corpus_blocks(tok, "test", block_size=100, max_blocks=2)
    prompts = [_prompt(tok, "Summarize: " + tok.decode(b)) for b in blocks]
    assert min(len(p) for p in prompts) > 64
    params = SamplingParams(max_tokens=8, temperature=0)
    engine = ServeEngine(model, tok, kv_cache="squat", kv_bits=2)
    try:
        together = _serve(engine, prompts, params)
        alone = [_serve(engine, [p], params)[0] for p in prompts]
    finally:
        engine.close()
    assert together == alone
    assert all(text for text, _ in together)
