"""Dr.SoW: response masks exact under three chat templates, scores equal a direct per-token
computation (models with different tokenizers), the server backend equals the local one,
context and routing, and one clear error per bad conversation."""

from __future__ import annotations

import copy

import pytest
import torch

from burnish.data.tokenize import IGNORE_INDEX, tokenize_response
from burnish.errors import DataError
from burnish.models.io import chat_text
from burnish.reward import DomainContext, DomainRouter, DrSow, LocalLogProbs, ServerLogProbs

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
    "'<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA3 = (
    "{{ '<|begin_of_text|>' }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + "
    "'<|end_header_id|>\\n\\n' + m['content'] + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)
ALTERNATING = (  # Gemma-style: refuses a system turn and non-alternating roles
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not "
    "supported') }}{% endif %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
)
CONV = [{"role": "user", "content": "sort 3 1 2"}, {"role": "assistant", "content": "1 2 3"}]


def with_template(tok, template: str | None):
    tok = copy.deepcopy(tok)
    if template is not None:
        tok.chat_template = template
    return tok


@pytest.mark.parametrize(
    ("template", "closing"), [(None, "eos"), (CHATML, "<|im_end|>\n"), (LLAMA3, "<|eot_id|>")]
)
def test_response_masks_are_exactly_the_response_turn(tok, template, closing) -> None:
    t = with_template(tok, template)
    closing = t.eos_token if closing == "eos" else closing
    ids, labels = tokenize_response(CONV, t)
    picked = [i for i, y in zip(ids, labels, strict=True) if y != IGNORE_INDEX]
    assert t.decode(picked) == "1 2 3" + closing
    prompt = chat_text(t, CONV[:1], add_generation_prompt=True)
    assert t.decode(ids[: len(ids) - len(picked)]) == prompt  # everything before is context


@pytest.mark.parametrize(
    ("conv", "words"),
    [
        (CONV[:1], "last message must be the assistant"),
        ([CONV[0], {"role": "assistant", "content": "  "}], "response is empty"),
        ([{"role": "user"}], "needs 'role' and 'content'"),
    ],
)
def test_bad_conversations_get_one_clear_error(tok, conv, words) -> None:
    with pytest.raises(DataError, match=words):
        tokenize_response(conv, tok)


def test_a_template_that_cannot_render_the_conversation_is_named(tok) -> None:
    t = with_template(tok, ALTERNATING)
    with pytest.raises(DataError, match=r"cannot render this conversation.*System role"):
        tokenize_response([{"role": "system", "content": "be brief"}, *CONV], t)


def direct(model, tok, conv) -> tuple[float, int]:
    """log p(response | prompt), unpacked, the response found by rendering the prompt."""
    prompt = chat_text(tok, conv[:-1], add_generation_prompt=True)
    full = chat_text(tok, conv)
    assert full.startswith(prompt)
    ids = tok(full, add_special_tokens=False)["input_ids"]
    start = len(tok(prompt, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
    return sum(float(lp[t - 1, ids[t]]) for t in range(start, len(ids))), len(ids) - start


CONVS = [
    CONV,
    [{"role": "user", "content": "reverse abc"}, {"role": "assistant", "content": "cba"}],
    [{"role": "system", "content": "terse"}, {"role": "user", "content": "2+2"},
     {"role": "assistant", "content": "Answer: 4"}],
]  # fmt: skip


def test_scores_equal_a_direct_per_token_computation(tok, tiny_model) -> None:
    strong_tok, weak_tok = with_template(tok, CHATML), tok  # two templates, two renderings
    strong, weak = tiny_model("llama", seed=1), tiny_model("qwen2", seed=2)
    drsow = DrSow(LocalLogProbs(strong, strong_tok, batch_tokens=64), LocalLogProbs(weak, weak_tok))
    parts = drsow.parts(CONVS)
    for conv, p in zip(CONVS, parts, strict=True):
        s, ns = direct(strong, strong_tok, conv)
        w, nw = direct(weak, weak_tok, conv)
        assert (p["strong_tokens"], p["weak_tokens"]) == (ns, nw)
        assert p["strong"] == pytest.approx(s, abs=1e-4) and p["weak"] == pytest.approx(w, abs=1e-4)
    assert drsow.score(CONVS) == pytest.approx([p["strong"] - p["weak"] for p in parts])
    mean = DrSow(drsow.strong, drsow.weak, normalize="mean").score(CONVS)
    want = [p["strong"] / p["strong_tokens"] - p["weak"] / p["weak_tokens"] for p in parts]
    assert mean == pytest.approx(want)


def test_the_server_backend_equals_the_local_one() -> None:
    from tests.serve.conftest import MODEL, thread_server

    from burnish.models import load_model
    from burnish.models.zoo import resolve_model

    model, tok = load_model(resolve_model(MODEL))
    local = LocalLogProbs(model, tok)(CONVS)
    with thread_server(model, tok) as server:
        remote = ServerLogProbs(server.base, MODEL, tok)(CONVS)
    for (a, na), (b, nb) in zip(local, remote, strict=True):
        assert na == nb and a == pytest.approx(b, abs=1e-4)


def test_contexts_and_routing() -> None:
    maths = DomainContext("Check the arithmetic.", [("1+1", "Answer: 2")])
    words = DomainContext("Spell carefully.")
    keywords = {"maths": ["sum", "plus"], "words": ["spell", "reverse"]}
    router = DomainRouter({"maths": maths, "words": words}, keywords, default="words")
    conv = [{"role": "user", "content": "What is the sum of 2 plus 2?"}, CONV[1]]
    assert router.route(conv) == "maths"
    assert router.route([{"role": "user", "content": "hello"}]) == "words"
    routed = router.apply(conv)
    assert [m["role"] for m in routed] == ["system", "user", "assistant", "user", "assistant"]
    assert routed[0]["content"] == "Check the arithmetic." and routed[-2:] == conv
    merged = words.apply([{"role": "system", "content": "Be brief."}, *CONV])
    assert merged[0]["content"] == "Spell carefully.\n\nBe brief." and len(merged) == 3
