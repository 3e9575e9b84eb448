"""Batch invariance: a row's quantized keys/values are the same alone or in a left-padded batch.

Key chunks are aligned to each row's own tokens (see :mod:`burnish.kvcache.kivi`), so what
else is in the batch (and so how much left padding a row gets) must not change a row's codes,
scales, zero points, dequantized keys or greedy output. All in the quantized regime: prompts
longer than 2G tokens (several chunks quantized at prefill), then decoding past more chunk
boundaries. The layers get the positions ``generate`` gives (a row's own tokens at 0, 1, ...
whatever its padding), which only the pre-RoPE variant reads.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from burnish.eval import generate_chat
from burnish.kvcache import (
    KIVICache,
    KIVIConfig,
    KIVILayer,
    SQuatCache,
    SQuatConfig,
    SQuatLayer,
    SQuatPreCache,
    SQuatPreLayer,
)
from burnish.kvcache.rope import RopeFrame
from burnish.models import load_model
from burnish.models.zoo import resolve_model
from burnish.tasks import get_task

G = R = 4
LENGTHS = (23, 14, 17, 21)  # left padding 0, 9, 6, 2: offsets 0, 1, 2, 2 modulo G
STEPS = 13  # decode past three more chunk boundaries of every row
LAYERS = {
    "kivi": (KIVILayer, KIVIConfig),
    "squat": (SQuatLayer, SQuatConfig),
    "squat_pre": (SQuatPreLayer, SQuatConfig),
}
ROPE = RopeFrame(LlamaRotaryEmbedding(LlamaConfig(hidden_size=64, num_attention_heads=4)))  # d 16


def _make_layer(kind: str) -> KIVILayer:
    layer_cls, config_cls = LAYERS[kind]
    extra = {"rank": 4, "lam": 1.0} if kind != "kivi" else {}
    layer = layer_cls(config_cls(bits=2, group_size=G, residual_length=R, **extra))
    if kind == "squat_pre":
        layer.rope = ROPE
    return layer


def _at(positions: list[int] | torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """What a model passes to ``cache.update``: ``kwargs={"position_ids": [B, T]}``."""
    pos = torch.as_tensor(positions)
    return {"kwargs": {"position_ids": pos if pos.dim() == 2 else pos[:, None]}}


def _padded_positions(lengths: tuple[int, ...]) -> torch.Tensor:
    """``[B, T0]`` positions of a left-padded prefill, as ``generate`` computes them: the mask's
    cumsum minus one (a row's own tokens at 0, 1, ...), padding clamped to 0."""
    t0 = max(lengths)
    mask = torch.arange(t0)[None, :] >= torch.tensor([t0 - n for n in lengths])[:, None]
    return (mask.long().cumsum(1) - 1).clamp(min=0)


def _row_inputs(seed: int, length: int) -> dict[str, torch.Tensor]:
    """One row's prefill keys/values ``[1, 2, L, 16]``, queries ``[1, 4, L, 16]`` and decode
    keys/values ``[STEPS, 1, 2, 1, 16]``; queries have a few dominant directions."""
    gen = torch.Generator().manual_seed(seed)
    basis = torch.randn(3, 16, generator=gen)
    queries = torch.randn(1, 4, length, 3, generator=gen) @ basis
    return {
        "k": torch.randn(1, 2, length, 16, generator=gen) * 2,
        "v": torch.randn(1, 2, length, 16, generator=gen),
        "q": queries + 0.1 * torch.randn(1, 4, length, 16, generator=gen),
        "dk": torch.randn(STEPS, 1, 2, 1, 16, generator=gen) * 2,
        "dv": torch.randn(STEPS, 1, 2, 1, 16, generator=gen),
    }


def _left_pad(rows: list[torch.Tensor], length: int) -> torch.Tensor:
    """Stack ``[1, h, L_i, d]`` rows into ``[B, h, length, d]``, garbage (1e3) in the padding."""
    out = []
    for x in rows:
        pad = torch.full((1, x.shape[1], length - x.shape[2], x.shape[3]), 1e3)
        out.append(torch.cat([pad, x], dim=2))
    return torch.cat(out)


def _own_keys(layer: KIVILayer, row: int, n_chunks: int) -> tuple[torch.Tensor, ...]:
    """Codes ``[H, n*G, packed]``, scales and zero points ``[H, n, d]`` of a row's first chunks."""
    q = layer.key_q
    return (
        q.codes[row, :, : n_chunks * G],
        q.scale[row, :, :n_chunks],
        q.zero[row, :, :n_chunks],
    )


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_layer_state_same_alone_and_left_padded(kind: str) -> None:
    """Driving the layer with identical per-row inputs: every stored code, scale and zero point
    of a row's real tokens, and its dequantized keys/values, are bit-identical alone and in a
    left-padded batch, after the prefill and after every decode step."""
    rows = [_row_inputs(i, n) for i, n in enumerate(LENGTHS)]
    t0 = max(LENGTHS)
    pads = [t0 - n for n in LENGTHS]
    alone = [_make_layer(kind) for _ in rows]
    for layer, x, n in zip(alone, rows, LENGTHS, strict=True):
        layer.update(x["k"], x["v"], **_at(torch.arange(n)[None]))
        layer.observe_prefill(x["q"], None)
    batched = _make_layer(kind)
    batched.update(
        _left_pad([x["k"] for x in rows], t0),
        _left_pad([x["v"] for x in rows], t0),
        **_at(_padded_positions(LENGTHS)),
    )
    mask = torch.arange(t0)[None, :] >= torch.tensor(pads)[:, None]  # [B, T0]
    batched.observe_prefill(_left_pad([x["q"] for x in rows], t0), mask[:, None, None, :])
    for step in range(STEPS + 1):
        if step:
            for layer, x, n in zip(alone, rows, LENGTHS, strict=True):
                layer.update(x["dk"][step - 1], x["dv"][step - 1], **_at([n + step - 1]))
            batched.update(
                torch.cat([x["dk"][step - 1] for x in rows]),
                torch.cat([x["dv"][step - 1] for x in rows]),
                **_at([n + step - 1 for n in LENGTHS]),
            )
        keys, values = batched.full_keys(), batched.full_values()
        for i, (layer, pad) in enumerate(zip(alone, pads, strict=True)):
            assert torch.equal(keys[i, :, pad:], layer.full_keys()[0]), (step, i)
            assert torch.equal(values[i, :, pad:], layer.full_values()[0]), (step, i)
        for i, (layer, pad) in enumerate(zip(alone, pads, strict=True)):
            n = int(layer.chunks[0])
            assert n >= (LENGTHS[i] - R) // G >= 2  # several chunks quantized at prefill
            assert int(batched.chunks[i]) == n  # quantized at the step it would be alone
            for got, want in zip(_own_keys(batched, i, n), _own_keys(layer, 0, n), strict=True):
                assert torch.equal(got, want)
            # values are per token: the row's quantized values sit at its own slots
            nv = layer.value_q.codes.shape[-2]
            assert torch.equal(batched.value_q.codes[i, :, pad : pad + nv], layer.value_q.codes[0])
    assert len({int(c) for c in batched.chunks}) > 1  # rows really sit at different frontiers


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_reorder_and_select_keep_rows_at_their_own_frontiers(kind: str) -> None:
    """Beam reorder and batch selection move each row's per-row state with it: after both,
    decoding past more chunk boundaries still matches the rows decoded alone."""
    lengths, steps = (23, 14, 17), 6
    rows = [_row_inputs(i, n) for i, n in enumerate(lengths)]
    t0 = max(lengths)
    layer = _make_layer(kind)
    layer.update(
        _left_pad([x["k"] for x in rows], t0),
        _left_pad([x["v"] for x in rows], t0),
        **_at(_padded_positions(lengths)),
    )
    mask = torch.arange(t0)[None, :] >= torch.tensor([t0 - n for n in lengths])[:, None]
    layer.observe_prefill(_left_pad([x["q"] for x in rows], t0), mask[:, None, None, :])
    before = layer.full_keys()
    layer.reorder_cache(torch.tensor([2, 0, 1]))
    assert torch.equal(layer.full_keys(), before[[2, 0, 1]])
    layer.batch_select_indices(torch.tensor([0, 2]))  # rows 2 and 1 of the prompts remain
    kept = [2, 1]
    alone = []
    for i in kept:
        own = _make_layer(kind)
        own.update(rows[i]["k"], rows[i]["v"], **_at(torch.arange(lengths[i])[None]))
        own.observe_prefill(rows[i]["q"], None)
        alone.append(own)
    for step in range(steps):
        layer.update(
            *(torch.cat([rows[i][key][step] for i in kept]) for key in ("dk", "dv")),
            **_at([lengths[i] + step for i in kept]),
        )
        for own, i in zip(alone, kept, strict=True):
            own.update(rows[i]["dk"][step], rows[i]["dv"][step], **_at([lengths[i] + step]))
        for b, (own, i) in enumerate(zip(alone, kept, strict=True)):
            assert torch.equal(layer.full_keys()[b, :, t0 - lengths[i] :], own.full_keys()[0])
            assert int(layer.chunks[b]) == int(own.chunks[0])


@pytest.fixture(scope="module")
def zoo_base():
    return load_model(resolve_model("base"))


@pytest.mark.parametrize("cache_cls", [KIVICache, SQuatCache, SQuatPreCache])
def test_generate_same_alone_and_left_padded(zoo_base, cache_cls) -> None:
    """``model.generate`` with the 2-bit cache (G = R = 4): each prompt's greedy output, and its
    layer-0 codes and statistics, are the same alone as in a left-padded batch of 8.

    Layer 0 is compared bit for bit: its keys are computed from the token embeddings alone, so
    batched and unbatched forwards give identical keys. Deeper layers' keys differ by ~1e-6
    between the two forwards (sdpa's reductions run over the padded length), which can move a
    code at a rounding edge; there only the greedy output is compared.
    """
    model, tok = zoo_base
    task = get_task("reversal", min_len=5, max_len=9)
    prompts = [p.prompt for p in task.generate(8, "test", seed=0)]
    options = {"bits": 2, "group_size": G, "residual_length": R}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cache = cache_cls(model, **options)
        batched = generate_chat(model, tok, prompts, 24, cache=cache)
        alone = [cache_cls(model, **options) for _ in prompts]
        outputs = [
            generate_chat(model, tok, [p], 24, cache=c)[0]
            for p, c in zip(prompts, alone, strict=True)
        ]
    assert outputs == batched
    for i, own in enumerate(alone):
        n = int(own.layers[0].chunks[0])
        assert n >= 3  # several chunks quantized
        got, want = _own_keys(cache.layers[0], i, n), _own_keys(own.layers[0], 0, n)
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a, b)
