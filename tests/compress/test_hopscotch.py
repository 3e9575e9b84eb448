"""Hopscotch's method: folding into a plain checkpoint, scale fitting, selection (resumable),
the baselines, and the command on the zoo."""

from __future__ import annotations

import json

import pytest
import torch
from tests.models.test_skipping import IDS, perturb, tiny_gemma3

from burnish.compress import SelectionSettings, SelectionState, fold_scales, select
from burnish.compress.data import pack_calibration
from burnish.compress.scales import fit_scales, mean_loss
from burnish.compress.select import block_similarity
from burnish.errors import ConfigError
from burnish.models import load_model, save_model
from burnish.models.skipping import SKIP_CONFIG_FILE, scaled_layers, wrap_scaled


def calibration(seed: int = 0, n: int = 24):
    g = torch.Generator().manual_seed(seed)
    seqs = []
    for _ in range(n):
        ids = torch.randint(3, 100, (int(torch.randint(8, 20, (1,), generator=g)),), generator=g)
        seqs.append((ids.tolist(), ids.tolist()))
    return pack_calibration(seqs, row_tokens=64, batch_rows=2, pad_id=0)


def _fold_subject(arch: str, tiny_model):
    """The zoo's trained ``ft-addition``, or a random tiny model whose norm epsilon is made
    negligible: folding is exact up to RMSNorm's epsilon, and a random init's hidden states
    are so small (rms ~0.02) that eps = 1e-6 alone moves logits by ~5e-4."""
    if arch == "zoo":
        from burnish.models.zoo import resolve_model

        return load_model(resolve_model("ft-addition"))[0]
    model = tiny_gemma3() if arch == "gemma3" else tiny_model(arch, num_layers=4)
    model.config.rms_norm_eps = 1e-12  # the saved plain checkpoint gets it too
    for m in model.modules():
        if hasattr(m, "eps") or hasattr(m, "variance_epsilon"):
            setattr(m, "eps" if hasattr(m, "eps") else "variance_epsilon", 1e-12)
    return model


@pytest.mark.parametrize("arch", ["zoo", "qwen2", "gemma3"])
def test_the_folded_plain_export_reproduces_the_wrapped_logits(tiny_model, tok, tmp_path, arch):
    model = _fold_subject(arch, tiny_model)
    wrap_scaled(model)
    perturb(model, [1, 2], seed=3)
    scaled_layers(model)[3].skip_mlp = True
    with torch.no_grad():
        want = model(IDS).logits
    fold_scales(model)
    path = save_model(model, tok, tmp_path / "plain")
    assert not (path / SKIP_CONFIG_FILE).exists()
    plain, _ = load_model(path)  # a stock checkpoint: nothing wrapped
    with torch.no_grad():
        torch.testing.assert_close(plain(IDS).logits, want, rtol=0, atol=1e-4)


def test_folding_refuses_a_sign_flip(tiny_model) -> None:
    model = tiny_model("llama", num_layers=2)
    wrap_scaled(model)
    with torch.no_grad():
        scaled_layers(model)[1].scales[1] = -0.5
    with pytest.raises(ConfigError, match="change sign"):
        fold_scales(model)


def test_fitting_only_trains_the_scales_and_lowers_the_loss(tiny_model) -> None:
    model = tiny_model("llama", num_layers=4)
    wrap_scaled(model)
    weights = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("scales")}
    scaled_layers(model)[1].skip_attention = True
    calib = calibration()
    before = mean_loss(model, calib)
    losses = fit_scales(model, calib, steps=30, lr=1e-2)
    assert len(losses) == 30 and mean_loss(model, calib) < before
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in weights.items())
    assert all(p.requires_grad for p in model.parameters())  # put back as it was


def run_select(model, calib, method: str, k: int, **kw) -> SelectionState:
    settings = SelectionSettings(method=method, k=k, steps=3, fit_steps=3, **kw)
    return select(model, calib, settings)


@pytest.mark.parametrize("method", ["exact", "cheap", "shortgpt", "attn-drop", "random"])
def test_every_method_skips_k_blocks(tiny_model, method: str) -> None:
    model = tiny_model("llama", num_layers=4)
    wrap_scaled(model)
    state = run_select(model, calibration(), method, 2)
    layers = scaled_layers(model)
    assert len(set(state.chosen)) == 2
    assert [i for i, m in enumerate(layers) if m.skip_attention] == sorted(state.chosen)
    assert [m.skip_mlp for m in layers].count(True) == (2 if method == "shortgpt" else 0)
    assert len(state.rounds) == 2


def test_the_exact_search_keeps_the_candidate_of_lowest_mean_loss(tiny_model) -> None:
    model = tiny_model("llama", num_layers=4)
    wrap_scaled(model)
    state = run_select(model, calibration(), "exact", 1)
    scores = {int(k): v for k, v in state.rounds[0]["scores"].items()}
    assert sorted(scores) == [0, 1, 2, 3]
    assert state.chosen == [min(scores, key=scores.__getitem__)]


def test_the_baselines_rank_by_cosine(tiny_model) -> None:
    model = tiny_model("llama", num_layers=4)
    wrap_scaled(model)
    calib = calibration()
    sims = block_similarity(model, calib)
    state = run_select(model, calib, "attn-drop", 1)
    assert state.chosen == [max(range(4), key=lambda i: sims["attention"][i])]
    assert all(-1 <= c <= 1 for c in sims["layer"] + sims["attention"])


@pytest.mark.parametrize("method", ["exact", "cheap"])
def test_a_killed_search_resumes_to_the_uninterrupted_result(tiny_model, method: str) -> None:
    calib = calibration()
    settings = SelectionSettings(method=method, k=3, steps=3, fit_steps=3)
    model = tiny_model("llama", num_layers=4)
    wrap_scaled(model)
    whole = select(model, calib, settings)
    saved: list[dict] = []

    def save_then_die(state: SelectionState) -> None:
        saved.append(json.loads(json.dumps(state.to_dict())))
        if len(saved) == 2:
            raise KeyboardInterrupt

    model = tiny_model("llama", num_layers=4)
    wrap_scaled(model)
    with pytest.raises(KeyboardInterrupt):
        select(model, calib, settings, save=save_then_die)
    model = tiny_model("llama", num_layers=4)  # a new process: fresh model, saved state
    wrap_scaled(model)
    resumed = select(model, calib, settings, SelectionState(**saved[-1]))
    assert resumed.chosen == whole.chosen
    torch.testing.assert_close(torch.tensor(resumed.scales), torch.tensor(whole.scales))
    with pytest.raises(ConfigError, match="other settings"):
        select(
            model,
            calib,
            SelectionSettings(method=method, k=3, steps=4),
            SelectionState(**saved[-1]),
        )


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown selection method"):
        SelectionSettings(method="best")
    with pytest.raises(ConfigError, match="at least 1"):
        SelectionSettings(k=0)


def test_asking_for_more_blocks_than_layers_is_refused(tiny_model) -> None:
    model = tiny_model("llama", num_layers=2)
    wrap_scaled(model)
    with pytest.raises(ConfigError, match="only 2 attention blocks"):
        run_select(model, calibration(), "cheap", 3)
