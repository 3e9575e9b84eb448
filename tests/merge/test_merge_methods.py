"""Each merge method's maths on small tensors against results computed by hand."""

from __future__ import annotations

import pytest
import torch

from burnish.errors import ConfigError
from burnish.merge import MERGE_METHODS, get_method, list_methods
from burnish.merge.consensus import agreement_mask, elect_sign
from burnish.merge.linear import linear
from burnish.merge.registry import (
    breadcrumbs,
    breadcrumbs_ties,
    call_method,
    dare_linear,
    dare_ties,
    task_arithmetic,
    ties,
)
from burnish.merge.sparsify import apply_mask, magnitude_mask, outlier_mask, random_mask

T = torch.tensor

# Three task vectors on a base of ones, chosen without magnitude ties.
BASE = torch.ones(4)
D1, D2, D3 = T([3.0, -1.0, 0.5, -2.0]), T([-1.5, -2.0, 0.4, 1.0]), T([-1.0, 4.0, 0.1, -0.5])
MODELS = [BASE + D1, BASE + D2, BASE + D3]


def test_linear_weighted_average_and_sum() -> None:
    a, b = T([1.0, 2.0]), T([3.0, 6.0])
    assert torch.equal(linear([a, b], [1.0, 3.0]), T([2.5, 5.0]))  # (1a + 3b) / 4
    assert torch.equal(linear([a, b], [1.0, 3.0], normalize=False), T([10.0, 20.0]))


def test_linear_keeps_dtype_out_of_the_maths() -> None:
    a = T([1.0, 3.0], dtype=torch.bfloat16)
    out = linear([a, a], [0.5, 0.5])
    assert out.dtype == torch.float32 and torch.equal(out, T([1.0, 3.0]))


def test_task_arithmetic_lambda_and_weights() -> None:
    base = torch.ones(3)
    m1, m2 = T([2.0, 1.0, 0.0]), T([1.0, 3.0, 1.0])  # d1 = [1, 0, -1], d2 = [0, 2, 0]
    out = task_arithmetic(base, [m1, m2], [1.0, 0.5], lam=2.0)  # 1 + 2 * (d1 + d2 / 2)
    assert torch.allclose(out, T([3.0, 3.0, -1.0]))
    norm = task_arithmetic(base, [m1, m2], [1.0, 0.5], lam=2.0, normalize=True)
    assert torch.allclose(norm, 1 + 2 * T([1.0, 1.0, -1.0]) / 1.5)


def test_elect_sign_is_sign_of_sum_and_zero_elects_plus() -> None:
    sign = elect_sign([T([1.0, -3.0, 1.0]), T([-2.0, 1.0, -1.0]), T([0.5, 1.0, 0.0])])
    assert torch.equal(sign, T([-1.0, -1.0, 1.0]))  # sums -0.5, -1, 0
    assert torch.equal(agreement_mask(T([-2.0, 0.0, 3.0]), T([-1.0, -1.0, 1.0])), T([1.0, 0, 1]))


def test_ties_trim_elect_disjoint_mean() -> None:
    # top-2 by magnitude: d1 -> [3, 0, 0, -2], d2 -> [-1.5, -2, 0, 0], d3 -> [-1, 4, 0, 0];
    # sums [0.5, 2, 0, -2] elect [+, +, +, -]; agreeing entries: 3 | 4 | none | -2.
    out = ties(BASE, MODELS, [1.0, 1.0, 1.0], [0.5, 0.5, 0.5])
    assert torch.allclose(out, BASE + T([3.0, 4.0, 0.0, -2.0]))
    # weights 2, 1, 1: weighted sums [3.5, 2, 0, -4]; mean of agreeing = (2*3)/2, 4/1, -4/2.
    out = ties(BASE, MODELS, [2.0, 1.0, 1.0], [0.5, 0.5, 0.5])
    assert torch.allclose(out, BASE + T([3.0, 4.0, 0.0, -2.0]))
    raw = ties(BASE, MODELS, [2.0, 1.0, 1.0], [0.5, 0.5, 0.5], normalize=False, lam=0.5)
    assert torch.allclose(raw, BASE + 0.5 * T([6.0, 4.0, 0.0, -4.0]))


def test_ties_sign_election_discards_the_minority() -> None:
    base = torch.zeros(1)
    out = ties(base, [T([2.0]), T([1.0]), T([-2.5])], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert torch.allclose(out, T([1.5]))  # + wins (0.5), mean of 2 and 1; -2.5 dropped


def test_magnitude_mask_keeps_at_least_one() -> None:
    d = T([0.1, -5.0, 2.0, 0.3])
    assert magnitude_mask(d, 0.5).tolist() == [False, True, True, False]
    assert magnitude_mask(d, 0.01).tolist() == [False, True, False, False]
    assert magnitude_mask(d, 1.0).all()


def test_outlier_mask_drops_top_gamma_and_the_smallest() -> None:
    d = torch.arange(1.0, 11.0) * T([1, -1] * 5)  # magnitudes 1..10, mixed signs
    # keep int(0.5 * 10) = 5 entries below the int(0.1 * 10) = 1 largest: magnitudes 5..9
    assert outlier_mask(d, 0.5, 0.1).tolist() == [False] * 4 + [True] * 5 + [False]
    out = breadcrumbs(torch.zeros(10), [d], [1.0], [0.5], gamma=0.1)
    assert torch.equal(out, d * outlier_mask(d, 0.5, 0.1))


def test_breadcrumbs_ties_sign_election() -> None:
    base = torch.zeros(4)
    a, b = T([1.0, 2.0, 3.0, 100.0]), T([-4.0, 0.5, 0.25, 0.125])
    # gamma 0.25 drops the largest entry of each (100, -4); density 0.75 keeps the other 3;
    # elected signs of [1 + 0, 2 + .5, 3 + .25, 0 + .125]: all +; b's entries agree too.
    out = breadcrumbs_ties(base, [a, b], [1.0, 1.0], [0.75, 0.75], gamma=0.25)
    assert torch.allclose(out, T([1.0, 2.5, 3.25, 0.125]))
    c = T([-3.0, -1.0, -0.5, 0.0])  # elect - on entry 0 (1 - 3); a's 1.0 is dropped
    out = breadcrumbs_ties(base, [a, c], [1.0, 1.0], [0.75, 0.75], gamma=0.0)
    # gamma 0: keep the 3 largest of each; a -> [0, 2, 3, 100], c -> [-3, -1, -0.5, 0]
    assert torch.allclose(out, T([-3.0, 2.0, 3.0, 100.0]))


def test_dare_survivors_are_rescaled_by_one_over_density_when_asked() -> None:
    d = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    out = dare_linear(
        torch.zeros(1000),
        [d],
        [1.0],
        [0.25],
        generator=torch.Generator().manual_seed(1),
        rescale_norm="density",
    )
    kept = out != 0
    assert 0.2 < kept.float().mean() < 0.3
    assert torch.allclose(out[kept], d[kept] / 0.25)


@pytest.mark.parametrize("method", [dare_linear, dare_ties])
def test_dare_rescales_to_the_l1_norm_by_default_as_mergekit(method) -> None:
    # mergekit's `rescale: true` (DARE's default) matches the undropped delta's L1 norm
    d = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    out = method(torch.zeros(1000), [d], [1.0], [0.25], generator=torch.Generator().manual_seed(1))
    kept = out != 0
    assert torch.isclose(out.abs().sum(), d.abs().sum())
    scale = d.abs().sum() / d[kept].abs().sum()
    assert torch.allclose(out[kept], d[kept] * scale) and abs(scale - 4) > 0.05


def test_rescale_option_none_means_the_method_default_l1() -> None:
    d = torch.randn(200, generator=torch.Generator().manual_seed(0))
    options = {"rescale": True, "rescale_norm": None, "lam": 1.0}
    out = call_method(get_method("ties"), torch.zeros(200), [d], [1.0], [0.3], options, None)
    assert torch.isclose(out.abs().sum(), d.abs().sum())


def test_dare_expectation_is_the_task_vector() -> None:
    g = torch.Generator().manual_seed(0)
    base, d = torch.randn(500, generator=g), torch.randn(500, generator=g)
    runs = torch.stack(
        [
            dare_linear(
                base,
                [base + d],
                [1.0],
                [0.3],
                generator=torch.Generator().manual_seed(s),
                rescale_norm="density",
            )
            for s in range(400)
        ]
    )
    mean_delta = runs.mean(0) - base
    # per-entry std of the mean: |d| sqrt((1 - p) / p) / sqrt(400) ~ 0.076 |d|
    assert (mean_delta - d).norm() / d.norm() < 0.12
    single = (runs[0] - base - d).norm() / d.norm()
    assert single > 1.0  # one draw is far from d; only the expectation matches


def test_dare_is_seeded() -> None:
    d = torch.randn(64)

    def run(seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return dare_ties(torch.zeros(64), [d, -d], [1.0, 1.0], [0.5, 0.5], generator=gen)

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_dare_ties_without_drop_is_sign_consensus_sum() -> None:
    base = torch.zeros(2)
    # sums [-2, -1] elect -; normalize off (mergekit default): entry0 -3, entry1 -2
    out = dare_ties(base, [T([1.0, -2.0]), T([-3.0, 1.0])], [1.0, 1.0], [1.0, 1.0])
    assert torch.equal(out, T([-3.0, -2.0]))


def test_rescale_l1_matches_the_original_norm() -> None:
    d = T([4.0, -1.0, 2.0, 1.0])
    mask = random_mask(d, 0.5, torch.Generator().manual_seed(0)) | T([True, False, False, False])
    out = apply_mask(d, mask, 0.5, rescale=True, norm="l1")
    assert torch.isclose(out.abs().sum(), d.abs().sum())
    assert torch.equal(apply_mask(d, mask, 0.5, rescale=False), d * mask)


# Every registered method, on the hand-made case above, against a hand-computed result.
HAND = {
    "linear": BASE + (D1 + D2 + D3) / 3,
    "task_arithmetic": BASE + D1 + D2 + D3,
    "ties": BASE + T([3.0, 4.0, 0.0, -2.0]),
    "dare_linear": BASE + D1 + D2 + D3,  # density 1: nothing dropped
    "dare_ties": BASE + T([3.0, 4.0, 1.0, -2.5]),  # density 1, signs [+, +, +, -], no mean
    # gamma 0.25, density 0.25 on 4 entries: each vector keeps only its second-largest entry:
    # d1 -> [0, 0, 0, -2], d2 -> [-1.5, 0, 0, 0], d3 -> [-1, 0, 0, 0]; they never disagree.
    "breadcrumbs": BASE + T([-2.5, 0.0, 0.0, -2.0]),
    "breadcrumbs_ties": BASE + T([-2.5, 0.0, 0.0, -2.0]),
}
HAND_DENSITY = {"ties": 0.5, "breadcrumbs": 0.25, "breadcrumbs_ties": 0.25}


def test_every_registered_method_is_tested() -> None:
    assert set(HAND) == set(MERGE_METHODS) == set(list_methods())


@pytest.mark.parametrize("name", sorted(MERGE_METHODS))
def test_registered_method_by_hand(name: str) -> None:
    method = get_method(name)
    density = HAND_DENSITY.get(name, 1.0)
    # breadcrumbs with gamma 0.25 on 4 entries drop each vector's largest and keep 1 entry
    options = {"gamma": 0.25, "lam": 1.0}
    out = call_method(method, BASE, MODELS, [1.0] * 3, [density] * 3, options, torch.Generator())
    assert torch.allclose(out, HAND[name]), (name, out)
    assert method.summary and set(method.options) <= {
        "lam",
        "normalize",
        "rescale",
        "rescale_norm",
        "gamma",
    }


def test_unknown_method_lists_the_registry() -> None:
    with pytest.raises(ConfigError, match="unknown merge method 'slerpy'") as e:
        get_method("slerpy")
    for name in MERGE_METHODS:
        assert name in str(e.value)


def test_magnitude_mask_exactly_k_with_ties_at_the_threshold() -> None:
    d = T([1.0, -1.0, 1.0, 0.5, 2.0])  # k = 3: 2.0 plus the first two of the tied 1.0s
    assert magnitude_mask(d, 0.6).tolist() == [True, True, False, False, True]
    big = torch.randn(1001, generator=torch.Generator().manual_seed(0))
    mask = magnitude_mask(big, 0.3)
    assert int(mask.sum()) == 300 and big.abs()[mask].min() >= big.abs()[~mask].max()


def _argsort_choice(d: torch.Tensor, density: float) -> torch.Tensor:
    """mergekit 0.1.5's TIES trim on CPU: the first k of an (unstable) descending argsort."""
    k = max(1, int(density * d.numel()))
    mask = torch.zeros(d.numel(), dtype=torch.bool)
    mask[torch.argsort(d.abs().reshape(-1).float(), descending=True)[:k]] = True
    return mask.reshape(d.shape)


@pytest.mark.parametrize("density", [0.05, 0.3, 0.5])
def test_magnitude_mask_breaks_ties_like_mergekits_cpu_argsort(density: float) -> None:
    # values from {-3..3}: thousands of entries tie at the threshold; which of them survive is
    # what torch's unstable CPU sort puts first, not index order
    d = torch.randint(-3, 4, (64, 1000), generator=torch.Generator().manual_seed(0)).float()
    want = _argsort_choice(d, density)
    k = max(1, int(density * d.numel()))
    stable = torch.argsort(d.abs().reshape(-1), descending=True, stable=True)[:k]
    index_order = torch.zeros(d.numel(), dtype=torch.bool)
    index_order[stable] = True  # ties kept in index order (burnish's old rule)
    assert not torch.equal(want.reshape(-1), index_order)  # the tie rule matters here
    mask = magnitude_mask(d, density)
    assert torch.equal(mask, want) and int(mask.sum()) == k


def test_magnitude_mask_without_straddling_ties_needs_no_sort(monkeypatch) -> None:
    import burnish.merge.sparsify as sparsify

    def no_sort(*_a: object, **_k: object) -> None:
        raise AssertionError("sorted")

    monkeypatch.setattr(sparsify, "_argsort_mask", no_sort)
    d = torch.randn(10_000, generator=torch.Generator().manual_seed(0))  # no ties
    assert torch.equal(magnitude_mask(d, 0.3), _argsort_choice(d, 0.3))
    z = torch.cat([torch.ones(100), torch.zeros(900)])  # threshold 0: only the zeros tie
    out = apply_mask(z, magnitude_mask(z, 0.5), 0.5, rescale=False)
    assert torch.equal(out, z * _argsort_choice(z, 0.5))  # same output, zeros unmarked


def _index_choice(d: torch.Tensor, density: float) -> torch.Tensor:
    """Ties at the threshold kept in index order: a stable descending argsort's first k."""
    k = max(1, int(density * d.numel()))
    mask = torch.zeros(d.numel(), dtype=torch.bool)
    mask[torch.argsort(d.abs().reshape(-1), descending=True, stable=True)[:k]] = True
    return mask.reshape(d.shape)


def test_trim_tie_break_is_mergekits_for_float32_inputs_and_index_order_for_16_bit(
    monkeypatch,
) -> None:
    import burnish.merge.sparsify as sparsify

    d = torch.randint(-3, 4, (64, 1000), generator=torch.Generator().manual_seed(1)).float()
    base = torch.zeros_like(d)
    out = ties(base, [d], [1.0], [0.3])  # float32: what mergekit's CPU sort keeps
    assert torch.equal(out, d * _argsort_choice(d, 0.3))

    def no_sort(*_a: object, **_k: object) -> None:
        raise AssertionError("sorted")

    monkeypatch.setattr(sparsify, "_argsort_mask", no_sort)
    half = ties(base.bfloat16(), [d.bfloat16()], [1.0], [0.3])  # exact in bf16: same delta
    assert torch.equal(half, d * _index_choice(d, 0.3))
    assert torch.equal(sparsify.magnitude_mask(d, 0.3, "index"), _index_choice(d, 0.3))
