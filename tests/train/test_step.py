"""One optimizer step: the loss is the per-token mean over the whole effective batch."""

from __future__ import annotations

import copy
import math
import random

import pytest
import torch

from burnish.data import collate_packed, plan_minibatches, tokenize_conversation
from burnish.train.distributed import DistInfo, shard_by_tokens
from burnish.train.step import (
    _split_head,
    build_optimizer,
    lr_lambda,
    token_loss_sum,
    train_step,
)

# (prompt, answer): very different lengths and label counts (answer chars + 1 <|end|>).
PAIRS = [
    ("a", "b"),
    ("x" * 40, "y"),
    ("hi", "z" * 30),
    ("q" * 12, "r" * 12),
    ("m", "n" * 3),
    ("k" * 25, "l" * 2),
    ("s" * 5, "t" * 18),
    ("u" * 3, "v" * 7),
]


@pytest.fixture(scope="module")
def data(tok) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    ids, labels = [], []
    for p, a in PAIRS:
        msgs = [{"role": "user", "content": p}, {"role": "assistant", "content": a}]
        x, y = tokenize_conversation(msgs, tok)
        ids.append(torch.tensor(x))
        labels.append(torch.tensor(y))
    return ids, labels


def _step(model, batches, total: int, lr: float = 0.5) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss, _ = train_step(model, opt, batches, total, 0.0, DistInfo())
    return loss


def test_minibatch_split_does_not_change_the_step(tiny_model, data) -> None:
    ids, labels = data
    lengths = [len(x) for x in ids]
    plans = plan_minibatches(lengths, max(lengths), max_tokens_per_step=60)
    assert len(plans) >= 4  # really split
    split = [collate_packed(rows, ids, labels, 0) for rows in plans]
    whole = collate_packed([row for rows in plans for row in rows], ids, labels, 0)
    total = whole.loss_tokens
    assert sum(mb.loss_tokens for mb in split) == total
    counts = [mb.loss_tokens for mb in split]
    assert max(counts) > 3 * min(counts)  # unequal minibatches, so the two means differ

    model = tiny_model("llama")
    reference = copy.deepcopy(model)
    with torch.no_grad():
        sums = [float(token_loss_sum(model, mb)) for mb in split]
    true_mean = sum(sums) / total
    mean_of_means = sum(s / mb.loss_tokens for s, mb in zip(sums, split, strict=True)) / len(split)

    loss_split = _step(model, split, total)
    loss_whole = _step(reference, [whole], total)
    # Same quantity, different summation order: fp32/fp64 rounding only.
    assert loss_split == pytest.approx(loss_whole, rel=1e-6)
    assert loss_split == pytest.approx(true_mean, rel=1e-6)
    # The test discriminates: averaging minibatch means would give another loss.
    assert abs(mean_of_means - true_mean) > 1e-3

    # Parameters after one SGD step (lr 0.5, no clipping) agree to atol 1e-6.
    initial = tiny_model("llama")
    moved = 0.0
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)
        moved = max(moved, float((p - initial.get_parameter(name)).detach().abs().max()))
    assert moved > 1e-3  # the step did change the weights


def test_mean_of_means_gives_different_parameters(tiny_model, data) -> None:
    """Weighting each minibatch by 1/its own tokens moves the weights differently."""
    ids, labels = data
    lengths = [len(x) for x in ids]
    plans = plan_minibatches(lengths, max(lengths), max_tokens_per_step=60)
    split = [collate_packed(rows, ids, labels, 0) for rows in plans]
    total = sum(mb.loss_tokens for mb in split)
    right, wrong = tiny_model("llama"), tiny_model("llama")
    _step(right, split, total)
    opt = torch.optim.SGD(wrong.parameters(), lr=0.5)
    for mb in split:  # the common mistake: mean per minibatch, then averaged
        (token_loss_sum(wrong, mb) / mb.loss_tokens / len(split)).backward()
    opt.step()
    diff = max(
        float((p - q).detach().abs().max())
        for p, q in zip(right.parameters(), wrong.parameters(), strict=True)
    )
    assert diff > 1e-4


def test_grad_clip_and_norm(tiny_model, data) -> None:
    ids, labels = data
    batch = collate_packed([[0, 1, 2]], ids, labels, 0)
    free, clipped = tiny_model("llama"), tiny_model("llama")
    before = [p.detach().clone() for p in clipped.parameters()]
    _, norm = train_step(
        free,
        torch.optim.SGD(free.parameters(), lr=1.0),
        [batch],
        batch.loss_tokens,
        0.0,
        DistInfo(),
    )
    _, norm_c = train_step(
        clipped,
        torch.optim.SGD(clipped.parameters(), lr=1.0),
        [batch],
        batch.loss_tokens,
        0.01,
        DistInfo(),
    )
    assert norm == pytest.approx(norm_c, rel=1e-6) and norm > 0.01  # pre-clip norm is returned
    step = torch.cat(
        [(p.detach() - b).flatten() for p, b in zip(clipped.parameters(), before, strict=True)]
    )
    assert float(step.norm()) == pytest.approx(0.01, rel=1e-3)  # SGD lr 1: step = clipped grad
    assert all(p.grad is None for p in clipped.parameters())  # gradients are cleared


def test_lr_lambda_shapes() -> None:
    warm = lr_lambda("constant", 4, 100)
    assert [warm(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_lambda("constant", 0, 10)(9) == 1.0

    cos = lr_lambda("cosine", 10, 110)
    assert cos(10) == 1.0
    assert cos(60) == pytest.approx(0.5)
    assert cos(35) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cos(110) == pytest.approx(0.0, abs=1e-12)
    assert cos(500) == pytest.approx(0.0, abs=1e-12)  # clamped after the end

    lin = lr_lambda("linear", 0, 10)
    assert [lin(s) for s in (0, 5, 10, 20)] == [1.0, 0.5, 0.0, 0.0]
    assert lr_lambda("linear", 2, 100)(0) == 0.5
    assert lr_lambda("cosine", 5, 5)(7) == 1.0  # total <= warmup: no decay


def test_shard_by_tokens_balances_and_covers() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(1, 100) for _ in range(64)]
    batch = [*range(0, 64, 2), 1, 3]
    for world in (1, 2, 3, 4):
        shards = shard_by_tokens(batch, lengths, world)
        assert len(shards) == world
        assert sorted(i for s in shards for i in s) == sorted(batch)
        loads = [sum(lengths[i] for i in s) for s in shards]
        assert max(loads) - min(loads) <= max(lengths[i] for i in batch)
        assert shards == shard_by_tokens(list(reversed(batch)), lengths, world)  # deterministic
    # Fewer samples than ranks: some ranks get nothing, none is duplicated.
    assert sorted(map(len, shard_by_tokens([5, 6], lengths, 4))) == [0, 0, 1, 1]


def _full_logits_loss(model, batch) -> torch.Tensor:
    """The reference: every position through the model's own forward, CE over the labels."""
    logits = model(
        input_ids=batch.input_ids,
        position_ids=batch.position_ids,
        attention_mask=batch.attention_mask,
        use_cache=False,
    ).logits
    return torch.nn.functional.cross_entropy(
        logits.float().flatten(0, 1), batch.shift_labels.flatten(), reduction="sum"
    )


@pytest.mark.parametrize("tied", [True, False])
def test_head_on_label_positions_only_gives_the_same_loss_and_gradients(
    tiny_model, data, tied
) -> None:
    ids, labels = data
    batch = collate_packed([[0, 1, 2], [3, 4], [5, 6, 7]], ids, labels, 0)
    assert batch.loss_tokens < batch.input_ids.numel() / 2  # most positions carry no label
    fast = tiny_model("llama", tie_word_embeddings=tied)
    assert _split_head(fast) is not None  # the label-only path is taken
    ref = copy.deepcopy(fast)
    loss = token_loss_sum(fast, batch)
    expected = _full_logits_loss(ref, batch)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-5)
    loss.backward()
    expected.backward()
    for (name, p), q in zip(fast.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_transformed_logits_take_the_models_own_forward(tiny_model, data) -> None:
    """A config that scales or soft-caps logits keeps the plain path (and its loss)."""
    ids, labels = data
    batch = collate_packed([[0, 1]], ids, labels, 0)
    model = tiny_model("llama")
    model.config.final_logit_softcapping = 30.0
    assert _split_head(model) is None
    torch.testing.assert_close(token_loss_sum(model, batch), _full_logits_loss(model, batch))


def test_build_optimizer_is_fused_on_cpu_and_matches_the_loop(tiny_model, data) -> None:
    ids, labels = data
    batch = collate_packed([[0, 1, 2, 3]], ids, labels, 0)
    fused_model, loop_model = tiny_model("llama"), tiny_model("llama")
    fused = build_optimizer(list(fused_model.parameters()), 1e-2, (0.9, 0.95), 0.1)
    assert fused.defaults["fused"]
    loop = torch.optim.AdamW(
        loop_model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1, foreach=False
    )
    for _ in range(3):
        for model, opt in ((fused_model, fused), (loop_model, loop)):
            train_step(model, opt, [batch], batch.loss_tokens, 1.0, DistInfo())
    for p, q in zip(fused_model.parameters(), loop_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
