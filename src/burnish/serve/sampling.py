"""Per-row sampling for the server: temperature, nucleus (top-p), seeded draws, log-probs.

Pure tensor functions. Each row of a decode batch belongs to a different request, so every
setting is a per-row tensor, and each row's uniform draw comes from its own request's
generator (same seed, same draws, whatever else shares the batch).
"""

from __future__ import annotations

import torch

__all__ = ["sample_rows", "top_logprobs"]


def _nucleus(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """``probs [R, V]`` with each row cut to its smallest set of most likely tokens whose mass
    reaches ``top_p [R]`` (the most likely token always kept), not renormalised."""
    if bool((top_p >= 1).all()):
        return probs
    sorted_p, order = probs.sort(-1, descending=True)  # [R, V]
    before = sorted_p.cumsum(-1) - sorted_p  # [R, V] mass strictly above each token
    keep_sorted = before < top_p[:, None]
    keep_sorted[:, 0] = True
    keep = torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted)
    return torch.where(keep, probs, torch.zeros_like(probs))


def sample_rows(
    logits: torch.Tensor, temperature: torch.Tensor, top_p: torch.Tensor, uniform: torch.Tensor
) -> torch.Tensor:
    """Next tokens ``[R]`` from ``logits [R, V]`` (fp32): per row, softmax(logits / T) cut to
    the top-p nucleus, drawn by inverse CDF with ``uniform [R]`` in [0, 1); T == 0 is argmax."""
    greedy = temperature <= 0
    t = torch.where(greedy, torch.ones_like(temperature), temperature)
    probs = _nucleus(torch.softmax(logits / t[:, None], dim=-1), top_p)
    cdf = probs.cumsum(-1)
    drawn = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None]).squeeze(1)
    drawn = drawn.clamp(max=logits.shape[-1] - 1)
    return torch.where(greedy, logits.argmax(-1), drawn)


def top_logprobs(
    logprobs: torch.Tensor, tokens: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The chosen tokens' log-probabilities ``[R]`` and the ``k`` most likely tokens with theirs
    (``[R, k]`` ids, ``[R, k]`` values) from log-probs ``[R, V]`` and ``tokens [R]``."""
    chosen = logprobs.gather(1, tokens[:, None]).squeeze(1)
    values, ids = logprobs.topk(k, dim=-1) if k > 0 else (logprobs[:, :0], tokens[:, None][:, :0])
    return chosen, ids, values
