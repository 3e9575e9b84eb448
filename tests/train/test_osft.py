"""OSFT: projection maths, the frozen-subspace invariant under AdamW, ranks, I/O, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from burnish.errors import ConfigError
from burnish.eval import evaluate
from burnish.io import write_jsonl
from burnish.models import load_model
from burnish.tasks import mixture
from burnish.train import osft as osft_mod
from burnish.train.osft import (
    OSFT,
    OSFTConfig,
    adaptive_fractions,
    find_targets,
    frozen_basis,
    layer_importance,
    project_gradient,
    restore_frozen_,
)
from burnish.train.sft import run_sft


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rows = [e.to_messages() for e in mixture(["sorting", "reversal"], 40, "train", 0)]
    return write_jsonl(tmp_path / "train.jsonl", rows)


def _cfg(model_dir: Path, data: Path, out: Path, **kw) -> OSFTConfig:
    base = dict(
        model=str(model_dir),
        data=str(data),
        output_dir=str(out),
        max_seq_len=64,
        effective_batch_size=8,
        lr=5e-3,
        max_steps=4,
        save_epoch_end=False,
        save_state=False,
        device="cpu",
        cache_dir=str(out) + "-cache",
    )
    return OSFTConfig(**{**base, **kw})


# --- maths -----------------------------------------------------------------------------------


def test_projection_removes_frozen_block_and_is_idempotent() -> None:
    g = torch.Generator().manual_seed(0)
    W, G = torch.randn(12, 9, generator=g), torch.randn(12, 9, generator=g)
    U_h, S_h, V_h = frozen_basis(W, 4)
    P = project_gradient(G, U_h, V_h)
    assert (U_h.T @ P @ V_h).abs().max() < 1e-5
    torch.testing.assert_close(project_gradient(P, U_h, V_h), P, atol=1e-6, rtol=0)
    # Only the frozen block changed: the rest of G is kept.
    torch.testing.assert_close(G - P, U_h @ (U_h.T @ G @ V_h) @ V_h.T, atol=1e-5, rtol=0)
    assert torch.allclose(S_h, torch.linalg.svdvals(W)[:4])


def test_two_sided_projection_keeps_row_and_column_spaces() -> None:
    g = torch.Generator().manual_seed(2)
    W, G = torch.randn(10, 14, generator=g), torch.randn(10, 14, generator=g)
    U_h, _, V_h = frozen_basis(W, 3)
    P = project_gradient(G, U_h, V_h, two_sided=True)
    assert (U_h.T @ P).abs().max() < 1e-5 and (P @ V_h).abs().max() < 1e-5
    torch.testing.assert_close(project_gradient(P, U_h, V_h, True), P, atol=1e-6, rtol=0)


def test_adamw_leaks_without_the_post_step_restore() -> None:
    """AdamW's rescaling and weight decay move projected updates back into the frozen
    subspace; restore_frozen_ after each step keeps U_h^T dW V_h at round-off."""
    g = torch.Generator().manual_seed(1)
    W0 = torch.randn(16, 12, generator=g)
    U_h, S_h, V_h = frozen_basis(W0, 6)

    def leak(restore: bool) -> float:
        w = torch.nn.Parameter(W0.clone())
        opt = torch.optim.AdamW([w], lr=1e-2, weight_decay=0.1)
        for _ in range(60):
            w.grad = project_gradient(torch.randn(16, 12, generator=g), U_h, V_h)
            opt.step()
            if restore:
                restore_frozen_(w.data, U_h, S_h, V_h)
        return float((U_h.T @ (w.detach() - W0) @ V_h).abs().max())

    assert leak(restore=False) > 1e-2  # a real leak, many orders above round-off
    assert leak(restore=True) < 1e-5  # float32 round-off of O(1) weights


def test_adaptive_fractions_constructed_case() -> None:
    got = adaptive_fractions(torch.tensor([0.2, 0.5, 0.8]), mrr=0.1, trr=0.8)
    torch.testing.assert_close(got, torch.tensor([0.1, 0.45, 0.8]))
    same = adaptive_fractions(torch.tensor([0.3, 0.3]), mrr=0.1, trr=0.8)
    torch.testing.assert_close(same, torch.tensor([0.8, 0.8]))


# --- on models -------------------------------------------------------------------------------


def test_default_targets_are_the_decoder_linears(tiny_model) -> None:
    model = tiny_model("llama")
    names = sorted(find_targets(model))
    assert len(names) == 2 * 7  # q, k, v, o, gate, up, down in each of 2 layers
    assert not any("lm_head" in n or "embed" in n for n in names)
    picked = find_targets(model, ["*.self_attn.q_proj"])
    assert sorted(picked) == ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"]


def test_layer_importance_of_an_identity_layer(tiny_model, tok) -> None:
    """A layer whose attention and MLP outputs are zeroed returns its input: cos = 1."""
    from burnish.data import tokenize_rows

    model = tiny_model("llama", num_layers=3)
    with torch.no_grad():
        model.model.layers[1].self_attn.o_proj.weight.zero_()
        model.model.layers[1].mlp.down_proj.weight.zero_()
    rows = [e.to_messages() for e in mixture(["sorting"], 6, "train", 0)]
    imp = layer_importance(model, tokenize_rows(rows, tok, 64), n_samples=6)
    assert imp.shape == (3,)
    assert imp[1].item() == pytest.approx(1.0, abs=1e-5)
    assert imp[0] < 0.999 and imp[2] < 0.999


def test_adaptive_ranks_follow_importance(model_dir, data, tmp_path, monkeypatch, tok) -> None:
    from burnish.data import prepare_dataset

    monkeypatch.setattr(osft_mod, "layer_importance", lambda *a, **k: torch.tensor([0.1, 0.9]))
    cfg = _cfg(model_dir, data, tmp_path / "o", rank_mode="adaptive", mrr=0.2, trr=0.6)
    model, _ = load_model(model_dir)
    method = OSFT(cfg)
    method.setup(model, prepare_dataset(data, tok, 64, tmp_path / "c"))
    # layer 0 is the least important (fraction mrr), layer 1 the most (trr); hidden 64.
    assert method.ranks["model.layers.0.self_attn.q_proj"] == (int(64 * 0.2), 64)
    assert method.ranks["model.layers.1.self_attn.q_proj"] == (int(64 * 0.6), 64)
    assert method.ranks["model.layers.1.mlp.down_proj"] == (int(64 * 0.6), 64)


def test_setup_leaves_logits_unchanged(model_dir, data, tmp_path, tok) -> None:
    from burnish.data import prepare_dataset

    model, _ = load_model(model_dir)
    ids = torch.arange(3, 50)[None]
    with torch.no_grad():
        before = model(ids).logits
    OSFT(_cfg(model_dir, data, tmp_path / "o")).setup(model, prepare_dataset(data, tok, 64))
    with torch.no_grad():
        after = model(ids).logits
    assert torch.equal(before, after)  # the dense formulation never touches the forward


@pytest.mark.parametrize("projection", ["block", "two_sided"])
@pytest.mark.parametrize("mode", ["uniform", "adaptive"])
def test_frozen_subspace_untouched_after_50_adamw_steps(
    model_dir, data, tmp_path, mode, projection
) -> None:
    model, tok = load_model(model_dir)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = _cfg(
        model_dir,
        data,
        tmp_path / "run",
        projection=projection,
        rank_mode=mode,
        max_steps=50,
        epochs=10,
        weight_decay=0.1,
        lr=1e-2,
    )
    method = OSFT(cfg)
    run_sft(cfg, progress=False, model=model, tokenizer=tok, method=method)
    assert 0 < method.frozen_share() < 1
    for t in method.targets:
        dW = t.param.detach() - start[f"{t.name}.weight"]
        assert dW.abs().max() > 1e-3, f"{t.name} did not train"
        bound = 1e-5 * start[f"{t.name}.weight"].abs().max().clamp(min=1)
        # Round-off of fp32 weights of magnitude ~1: the leak stays near 1e-6.
        assert (t.U_h.T @ dW @ t.V_h).abs().max() < bound, t.name
        if projection == "two_sided":
            assert (t.U_h.T @ dW).abs().max() < bound, t.name
            assert (dW @ t.V_h).abs().max() < bound, t.name


def test_freeze_untargeted_trains_only_targets(model_dir, data, tmp_path) -> None:
    model, tok = load_model(model_dir)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = _cfg(model_dir, data, tmp_path / "run", freeze_untargeted=True, max_steps=3)
    method = OSFT(cfg)
    run_sft(cfg, progress=False, model=model, tokenizer=tok, method=method)
    targets = {f"{t.name}.weight" for t in method.targets}
    for n, p in model.named_parameters():
        assert torch.equal(p, start[n]) != (n in targets), n


def test_saved_checkpoint_is_plain_and_scores_the_same(model_dir, data, tmp_path) -> None:
    model, tok = load_model(model_dir)
    cfg = _cfg(model_dir, data, tmp_path / "run", max_steps=6)
    run_sft(cfg, progress=False, model=model, tokenizer=tok, method=OSFT(cfg))
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final")
    ids = torch.arange(3, 40)[None]
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, model(ids).logits)
    a = evaluate(model, tok, ["sorting"], 8)["sorting"].accuracy
    b = evaluate(plain, tok, ["sorting"], 8)["sorting"].accuracy
    assert a == b


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("u", [0.0, 1.0, 1.5, -0.1])
def test_ratio_outside_open_interval(model_dir, data, tmp_path, u) -> None:
    with pytest.raises(ConfigError, match="unfreeze_rank_ratio must be in"):
        OSFT(_cfg(model_dir, data, tmp_path / "o", unfreeze_rank_ratio=u))


def test_pattern_matching_nothing(model_dir, data, tmp_path) -> None:
    model, tok = load_model(model_dir)
    cfg = _cfg(model_dir, data, tmp_path / "o", target_patterns=["*.no_such_proj"])
    with pytest.raises(ConfigError, match=r"\*\.no_such_proj.*matches no Linear"):
        run_sft(cfg, progress=False, model=model, tokenizer=tok, method=OSFT(cfg))


def test_empty_calibration_set(model_dir, data, tmp_path) -> None:
    model, tok = load_model(model_dir)
    cfg = _cfg(model_dir, data, tmp_path / "o", rank_mode="adaptive", calibration_samples=0)
    with pytest.raises(ConfigError, match="calibration set is empty"):
        run_sft(cfg, progress=False, model=model, tokenizer=tok, method=OSFT(cfg))
