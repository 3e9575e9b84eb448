"""SQuat's ``lam_scale``: lambda relative to the queries' energy outside the subspace."""

from __future__ import annotations

import pytest
import torch

from burnish.errors import ConfigError
from burnish.kvcache import SQuatConfig, SQuatLayer
from burnish.kvcache.squat import query_subspace


def _queries(scale: float) -> torch.Tensor:
    """``[2, 500, 16]`` queries with a decaying spectrum, times ``scale``."""
    g = torch.Generator().manual_seed(0)
    spread = torch.logspace(1, -1, 16)  # per-direction standard deviations
    return scale * torch.randn(2, 500, 16, generator=g) * spread


def test_residual_scale_divides_by_the_mean_eigenvalue_outside_the_subspace() -> None:
    q, r = _queries(1.0), 4
    m = q.transpose(-1, -2) @ q / q.shape[-2]  # [2, d, d] second moment
    evals, evecs = torch.linalg.eigh(m)  # ascending
    top = evecs[..., -r:] * evals[..., None, -r:] @ evecs[..., -r:].transpose(-1, -2)  # M_r
    c = evals[..., :-r].mean(-1)  # mean eigenvalue outside the top r
    q_hat = query_subspace(q, r, "residual")
    got = q_hat.transpose(-1, -2) @ q_hat
    assert torch.allclose(got, top / c[:, None, None], rtol=1e-3, atol=1e-3)
    plain = query_subspace(q, r)
    assert torch.allclose(plain.transpose(-1, -2) @ plain, top, rtol=1e-3, atol=1e-3)


def test_residual_scale_does_not_depend_on_the_query_norm() -> None:
    """Scaling every query by 30 leaves the residual-scaled subspace (and so the keys'
    quantization) unchanged; the plain one grows 30x."""
    small, large = (
        query_subspace(_queries(1.0), 4, "residual"),
        query_subspace(_queries(30.0), 4, "residual"),
    )
    assert torch.allclose(small.abs(), large.abs(), rtol=1e-3, atol=1e-4)
    ratio = query_subspace(_queries(30.0), 4).norm() / query_subspace(_queries(1.0), 4).norm()
    assert float(ratio) == pytest.approx(30.0, rel=1e-4)


def test_full_rank_uses_the_mean_eigenvalue() -> None:
    q = _queries(1.0)
    q_hat = query_subspace(q, 16, "residual")  # r = d: c is the mean over all d
    trace = (q_hat.transpose(-1, -2) @ q_hat).diagonal(dim1=-2, dim2=-1).sum(-1)
    assert torch.allclose(trace, torch.full((2,), 16.0), rtol=1e-4)


def test_layer_uses_the_configured_scale() -> None:
    keys = torch.randn(1, 2, 64, 16, generator=torch.Generator().manual_seed(1))
    queries = 50 * torch.randn(1, 4, 64, 16, generator=torch.Generator().manual_seed(2))
    hats = {}
    for scale in ("moment", "residual"):
        layer = SQuatLayer(SQuatConfig(bits=2, group_size=8, residual_length=8, lam_scale=scale))
        layer.update(keys, keys)
        layer.observe_prefill(queries, None)
        hats[scale] = layer.q_hat
    want = query_subspace(queries[0].reshape(2, -1, 16), 8, "residual")
    assert torch.allclose(hats["residual"][0], want)
    assert not torch.allclose(hats["moment"], hats["residual"])


def test_unknown_scale_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="lam_scale"):
        SQuatConfig(lam_scale="trace")
    with pytest.raises(ConfigError, match="lam_scale"):
        query_subspace(torch.randn(5, 4), 2, "trace")
