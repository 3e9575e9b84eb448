"""Per-row sampling: greedy, nucleus cut, seeded draws, top log-probs."""

from __future__ import annotations

import torch

from burnish.serve.sampling import _nucleus, sample_rows, top_logprobs


def test_greedy_rows_take_the_argmax_whatever_the_draw() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0]])
    out = sample_rows(logits, torch.zeros(2), torch.ones(2), torch.tensor([0.99, 0.0]))
    assert out.tolist() == [1, 0]


def test_nucleus_keeps_the_smallest_set_reaching_top_p() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])

    def kept(p: float) -> list[bool]:
        return (_nucleus(probs, torch.tensor([p])) > 0).squeeze(0).tolist()

    assert kept(0.7) == [True, True, False, False]
    assert kept(0.81) == [True, True, True, False]
    assert kept(0.5) == [True, False, False, False]  # 0.5 alone reaches 0.5
    assert kept(0.01) == [True, False, False, False]  # the most likely token always stays
    assert torch.equal(_nucleus(probs, torch.tensor([1.0])), probs)


def test_top_p_never_draws_outside_the_nucleus() -> None:
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]])).expand(500, 3)
    draws = torch.rand(500, generator=torch.Generator().manual_seed(0))
    out = sample_rows(logits, torch.ones(500), torch.full((500,), 0.6), draws)
    assert set(out.tolist()) == {0}
    out = sample_rows(logits, torch.ones(500), torch.full((500,), 0.9), draws)
    assert set(out.tolist()) == {0, 1}


def test_sampling_follows_the_tempered_distribution() -> None:
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]])).expand(20000, 3)
    draws = torch.rand(20000, generator=torch.Generator().manual_seed(1))
    out = sample_rows(logits, torch.ones(20000), torch.ones(20000), draws)
    freq = torch.bincount(out, minlength=3).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.7, 0.2, 0.1]), atol=0.02)


def test_top_logprobs_are_the_k_largest_and_the_chosen_one() -> None:
    lp = torch.log_softmax(torch.tensor([[1.0, 3.0, 2.0, 0.0]]), -1)
    chosen, ids, values = top_logprobs(lp, torch.tensor([3]), 2)
    assert ids.tolist() == [[1, 2]]
    assert torch.allclose(values, lp[:, [1, 2]])
    assert torch.allclose(chosen, lp[:, 3])
    assert top_logprobs(lp, torch.tensor([3]), 0)[1].shape == (1, 0)
