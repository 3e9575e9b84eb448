"""Merging two quantized caches' rows (``QuantizedKVCache.absorb``, continuous batching): a row
decodes the same in the merged batch as alone, whatever the other row's length."""

from __future__ import annotations

import pytest
import torch

from burnish.errors import ConfigError
from burnish.kvcache import KIVICache, SQuatCache, SQuatPreCache
from burnish.models import load_model
from burnish.models.zoo import resolve_model

G = R = 4
CACHES = {"kivi": KIVICache, "squat": SQuatCache, "squat_pre": SQuatPreCache}


@pytest.fixture(scope="module")
def policy():
    return load_model(resolve_model("arith-policy"))


def _cache(kind: str, model):
    extra = {"rank": 4, "lam": 1.0} if kind != "kivi" else {}
    return CACHES[kind](model, bits=2, group_size=G, residual_length=R, **extra)


@torch.no_grad()
def _step(model, cache, mask, pos, tokens):
    """Feed one token per row; returns (logits [B, V], mask, pos)."""
    mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    out = model(
        input_ids=tokens[:, None], attention_mask=mask, position_ids=pos[:, None], cache=cache
    )
    return out.logits[:, -1], mask, pos + 1


@torch.no_grad()
def _prefill(model, cache, ids: list[int]):
    x = torch.tensor([ids])
    mask = torch.ones_like(x)
    out = model(
        input_ids=x, attention_mask=mask, position_ids=torch.arange(len(ids))[None], cache=cache
    )
    return out.logits[:, -1], mask, torch.tensor([len(ids)])


@pytest.mark.parametrize("kind", list(CACHES))
def test_rows_decode_the_same_after_absorb(policy, kind) -> None:
    model, tok = policy
    a_ids = tok("Q: 12+7-4*3+9-1=")["input_ids"]  # longer: several chunks quantized
    b_ids = tok("Q: 5+6=")["input_ids"]
    feed_a = torch.tensor(tok("1+2+3+4+5+6+7+8+9")["input_ids"][:14])
    feed_b = torch.tensor(tok("9-8-7-6-5-4-3-2-1")["input_ids"][:13])
    try:
        # References: each row alone.
        ca = _cache(kind, model)
        _, ma, pa = _prefill(model, ca, a_ids)
        for t in feed_a[:5]:
            _, ma, pa = _step(model, ca, ma, pa, t[None])
        ref_a = []
        for t in feed_a[5:]:
            logits, ma, pa = _step(model, ca, ma, pa, t[None])
            ref_a.append(logits[0])
        cb = _cache(kind, model)
        _, mb, pb = _prefill(model, cb, b_ids)
        ref_b = []
        for t in feed_b:
            logits, mb, pb = _step(model, cb, mb, pb, t[None])
            ref_b.append(logits[0])
        # Merged: a has decoded 5 tokens when b joins.
        ca = _cache(kind, model)
        _, ma, pa = _prefill(model, ca, a_ids)
        for t in feed_a[:5]:
            _, ma, pa = _step(model, ca, ma, pa, t[None])
        cb = _cache(kind, model)
        _, mb, pb = _prefill(model, cb, b_ids)
        ca.absorb(cb)
        width = ma.shape[1]
        mask = torch.cat([ma, torch.cat([mb.new_zeros(1, width - mb.shape[1]), mb], 1)])
        pos = torch.cat([pa, pb])
        assert ca.get_seq_length() == width
        for j in range(9):
            tokens = torch.stack([feed_a[5 + j], feed_b[j]])
            logits, mask, pos = _step(model, ca, mask, pos, tokens)
            assert torch.allclose(logits[0], ref_a[j], atol=1e-4)
            assert torch.allclose(logits[1], ref_b[j], atol=1e-4)
        # The long row leaves; the slots that are now padding for every row are dropped.
        ca.batch_select_indices(torch.tensor([1]))
        mask, pos = mask[1:], pos[1:]
        n = int(mask[0].int().argmax())
        assert n > 0
        ca.trim_left(n)
        mask = mask[:, n:]
        assert ca.get_seq_length() == mask.shape[1]
        for j in range(9, 13):
            logits, mask, pos = _step(model, ca, mask, pos, feed_b[j][None])
            assert torch.allclose(logits[0], ref_b[j], atol=1e-4)
        with pytest.raises(ConfigError, match="cannot drop"):
            ca.trim_left(1)
    finally:
        model.set_attn_implementation("sdpa")


def test_absorb_refuses_other_kinds(policy) -> None:
    model, _ = policy
    try:
        a, b = _cache("kivi", model), KIVICache(model, bits=4, group_size=G, residual_length=R)
        with pytest.raises(ConfigError, match="same class and options"):
            a.absorb(b)
        with pytest.raises(ConfigError, match="same class"):
            a.absorb(_cache("squat", model))
    finally:
        model.set_attn_implementation("sdpa")
