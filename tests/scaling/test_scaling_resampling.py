"""Particle maths: weights from PRM scores, ESS, multinomial and systematic resampling."""

from __future__ import annotations

import numpy as np
import pytest

from burnish.errors import ConfigError
from burnish.scaling.maths import (
    effective_sample_size,
    log_weights,
    metropolis_swap_accept,
    resample,
    resampling_probs,
)

PROBS = np.array([0.5, 0.25, 0.15, 0.1])


def test_weights_are_softmax_of_clipped_logits() -> None:
    s = np.array([0.9, 0.5, 0.1])
    np.testing.assert_allclose(log_weights(s), np.log(s / (1 - s)))
    assert np.isfinite(log_weights([0.0, 1.0])).all()  # clipped, not +-inf
    p = resampling_probs(s, tau=1.0)
    np.testing.assert_allclose(p, np.array([9, 1, 1 / 9]) / (9 + 1 + 1 / 9))
    hot = resampling_probs(s, tau=100.0)
    assert np.ptp(hot) < 0.02 and p[0] > hot[0]  # high tau flattens
    with pytest.raises(ConfigError, match="tau"):
        resampling_probs(s, tau=0)


def test_ess_bounds() -> None:
    assert effective_sample_size(np.full(8, 1 / 8)) == pytest.approx(8)
    assert effective_sample_size([1.0, 0, 0, 0]) == pytest.approx(1)
    assert 1 < effective_sample_size(PROBS) < 4


@pytest.mark.parametrize("method", ["multinomial", "systematic"])
def test_resampling_frequencies_match_weights(method: str) -> None:
    """Over 4000 draws of 8 ancestors, each index's share is within 0.01 of its weight
    (multinomial: ~5 standard errors of sqrt(p(1-p)/32000) <= 0.0028)."""
    rng = np.random.default_rng(0)
    counts = np.zeros(len(PROBS))
    for _ in range(4000):
        counts += np.bincount(resample(PROBS, 8, rng, method), minlength=len(PROBS))
    np.testing.assert_allclose(counts / counts.sum(), PROBS, atol=0.01)


def test_systematic_counts_are_floor_or_ceil() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        c = np.bincount(resample(PROBS, 8, rng, "systematic"), minlength=4)
        assert (np.abs(c - 8 * PROBS) < 1).all() and c.sum() == 8


@pytest.mark.parametrize("method", ["multinomial", "systematic"])
def test_resampling_is_seeded(method: str) -> None:
    a = [resample(PROBS, 6, np.random.default_rng(7), method) for _ in range(3)]
    assert all((x == a[0]).all() for x in a)
    with pytest.raises(ConfigError, match="resampling method"):
        resample(PROBS, 6, np.random.default_rng(7), "stratified-typo")


def test_metropolis_swap() -> None:
    # Cold chain (tau 1) holding a worse state than the hot one (tau 2): always swap.
    assert metropolis_swap_accept(-1.0, 2.0, 1.0, 2.0, u=0.999)
    # Reverse: accept with probability exp((1 - 1/2) * (-3)) ~ 0.223.
    assert metropolis_swap_accept(2.0, -1.0, 1.0, 2.0, u=0.2)
    assert not metropolis_swap_accept(2.0, -1.0, 1.0, 2.0, u=0.25)
