"""The maths of particle methods as pure functions on numpy arrays.

weights: PRM score s in (0, 1) -> logit(s) = log(s / (1 - s)) (s clipped away from 0 and 1)
-> resampling probabilities softmax(logit / tau). Resampling draws ancestor indices from those
probabilities (multinomial, or systematic: one uniform, N evenly spaced points; same
expectation, lower variance). ESS = 1 / sum(p^2) measures weight degeneracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from burnish.errors import ConfigError

__all__ = [
    "RESAMPLERS",
    "effective_sample_size",
    "log_weights",
    "metropolis_swap_accept",
    "multinomial_resample",
    "resample",
    "resampling_probs",
    "systematic_resample",
]

EPS = 1e-6


def log_weights(scores: Sequence[float] | np.ndarray, eps: float = EPS) -> np.ndarray:
    """logit of each score, with scores clipped to [eps, 1 - eps]. [N] -> [N]."""
    s = np.clip(np.asarray(scores, dtype=np.float64), eps, 1.0 - eps)
    return np.log(s) - np.log1p(-s)


def resampling_probs(
    scores: Sequence[float] | np.ndarray, tau: float = 1.0, eps: float = EPS
) -> np.ndarray:
    """softmax(logit(s) / tau): resampling probabilities [N] summing to 1."""
    if tau <= 0:
        raise ConfigError(f"resampling temperature tau must be > 0, got {tau}")
    z = log_weights(scores, eps) / tau
    z -= z.max()
    p = np.exp(z)
    return p / p.sum()


def effective_sample_size(probs: Sequence[float] | np.ndarray) -> float:
    """ESS = 1 / sum(p_i^2) of normalised weights: N for uniform weights, 1 for one winner."""
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()
    return float(1.0 / np.sum(p * p))


def multinomial_resample(probs: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` ancestor indices drawn i.i.d. from ``probs``, sorted. [N] -> [n] int."""
    return np.sort(rng.choice(len(probs), size=n, replace=True, p=probs))


def systematic_resample(probs: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Systematic resampling: points (u + k) / n, k = 0..n-1, one u ~ U[0, 1). [N] -> [n].

    Ancestor i is drawn floor(n p_i) or ceil(n p_i) times, so counts deviate from n p_i by
    less than one.
    """
    cdf = np.cumsum(np.asarray(probs, dtype=np.float64))
    cdf[-1] = 1.0  # guard against rounding
    points = (rng.random() + np.arange(n)) / n
    return np.searchsorted(cdf, points, side="right").clip(max=len(probs) - 1)


RESAMPLERS = {"multinomial": multinomial_resample, "systematic": systematic_resample}


def resample(probs: np.ndarray, n: int, rng: np.random.Generator, method: str) -> np.ndarray:
    """Ancestor indices by ``method`` ("multinomial" or "systematic")."""
    if method not in RESAMPLERS:
        raise ConfigError(
            f"unknown resampling method {method!r}; choose one of {', '.join(RESAMPLERS)}"
        )
    return RESAMPLERS[method](probs, n, rng)


def metropolis_swap_accept(
    weight_i: float, weight_j: float, tau_i: float, tau_j: float, u: float
) -> bool:
    """Accept swapping states of tempered chains i and j (targets exp(w / tau)).

    Acceptance probability min(1, exp((1/tau_i - 1/tau_j) * (w_j - w_i))), with w the
    log-weight (logit of the PRM score) of each chain's current state; ``u`` ~ U[0, 1).
    """
    log_a = (1.0 / tau_i - 1.0 / tau_j) * (weight_j - weight_i)
    return bool(np.log(max(u, 1e-300)) < min(0.0, log_a))
