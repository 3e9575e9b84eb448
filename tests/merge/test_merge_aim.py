"""AIM: the relaxation maths, activation statistics by forward hooks, caching, whole merges."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from burnish.errors import DataError, ModelLoadError
from burnish.merge import (
    AIMConfig,
    aim_relax,
    apply_aim,
    calibration_blocks,
    channel_importance,
    collect_activation_stats,
    compute_or_load_stats,
    load_merge_config,
    load_stats,
    module_omega,
    run_merge,
)
from burnish.merge import aim_stats as aim_stats_module
from burnish.models import load_model

T = torch.tensor


def tensors(directory: Path) -> dict[str, torch.Tensor]:
    out = {}
    for file in sorted(directory.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            out.update({k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118
    return out


def test_relax_by_hand() -> None:
    merged, base = T([[2.0, 4.0], [6.0, 8.0]]), torch.zeros(2, 2)
    # pull = I * (1 - omega) = [0.5, 0.25]: W = W_m * (1 - pull) over input columns
    out = aim_relax(merged, base, T([1.0, 0.5]), omega=0.5)
    assert torch.allclose(out, T([[1.0, 3.0], [3.0, 6.0]]))


def test_relax_omega_one_is_exact_and_omega_zero_pins_busiest_channel() -> None:
    g = torch.Generator().manual_seed(0)
    merged, base = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    imp = channel_importance(T([0.3, 2.0, 0.0, 1.0, 0.5]))
    assert torch.equal(aim_relax(merged, base, imp, 1.0), merged)
    zero = aim_relax(merged, base, imp, 0.0)
    assert torch.equal(zero[:, 1], base[:, 1])  # I = 1: exactly the base value
    assert torch.equal(zero[:, 2], merged[:, 2])  # I = 0: exactly the merge
    assert torch.allclose(zero[:, 3], base[:, 3] + (merged[:, 3] - base[:, 3]) * 0.5)


def test_importance_normalised_and_zero_safe() -> None:
    assert torch.equal(channel_importance(T([1.0, 4.0, 2.0])), T([0.25, 1.0, 0.5]))
    assert torch.equal(channel_importance(torch.zeros(3)), torch.zeros(3))


def test_module_omega_first_matching_glob() -> None:
    by = {"*.mlp.*": 0.6, "model.layers.0.*": 0.1, "lm_head": 1.0}
    assert module_omega("model.layers.0.mlp.up_proj", 0.4, by) == 0.6
    assert module_omega("model.layers.0.self_attn.q_proj", 0.4, by) == 0.1
    assert module_omega("model.layers.1.self_attn.q_proj", 0.4, by) == 0.4
    assert module_omega("lm_head", 0.4, by) == 1.0


def test_stats_cover_every_linear_and_norm_and_skip_padding(tiny_model, tok) -> None:
    model = tiny_model("llama", tie_word_embeddings=False)
    blocks = [[5, 6, 7, 8, 9], [10, 11]]  # padded to 5 in one batch
    stats = collect_activation_stats(model, blocks, pad_id=0, batch_size=2)
    linears = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert linears <= set(stats) and "lm_head.weight" in stats
    assert "model.layers.0.input_layernorm.weight" in stats and "model.norm.weight" in stats
    assert stats["model.layers.0.mlp.down_proj.weight"].shape == (model.config.intermediate_size,)
    # the first norm's input is the token embedding: mean |embedding| over the 7 real tokens
    emb = model.get_input_embeddings().weight.detach()
    expected = emb[[5, 6, 7, 8, 9, 10, 11]].abs().mean(0)
    assert torch.allclose(stats["model.layers.0.input_layernorm.weight"], expected, atol=1e-6)
    # hooks are removed afterwards: no hook left on any module
    assert not any(m._forward_hooks for m in model.modules())


def test_calibration_sources(tmp_path: Path, tok) -> None:
    zoo = calibration_blocks(None, tok, block_size=64, max_texts=20)
    assert len(zoo) == 20 and all(0 < len(b) <= 64 for b in zoo)
    assert zoo[0][0] == tok.bos_token_id  # rendered through the chat template
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('{"text": "hello"}\n{"prompt": "2+2"}\n')
    assert len(calibration_blocks(str(jsonl), tok)) == 2
    txt = tmp_path / "c.txt"
    txt.write_text("x" * 100)
    assert [len(b) for b in calibration_blocks(str(txt), tok, block_size=40)] == [40, 40, 20]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"other": 1}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl: row 2"):
        calibration_blocks(str(bad), tok)
    with pytest.raises(DataError, match="no such calibration file"):
        calibration_blocks(str(tmp_path / "nope.txt"), tok)


def test_stats_cached_by_model_and_data(family, tmp_path: Path, monkeypatch) -> None:
    stats, path = compute_or_load_stats(family["base"], max_texts=8, block_size=64)
    _, meta = load_stats(path)
    assert path.parent == tmp_path / "cache" / "aim" and len(meta["model_hash"]) == 64
    monkeypatch.setattr(aim_stats_module, "collect_activation_stats", _fail)
    again, path2 = compute_or_load_stats(family["base"], max_texts=8, block_size=64)
    assert path2 == path and all(torch.equal(again[k], stats[k]) for k in stats)
    with pytest.raises(AssertionError, match="recomputed"):  # other data: a new key
        compute_or_load_stats(family["base"], max_texts=4, block_size=64)
    with pytest.raises(ModelLoadError, match="statistics of another model"):
        compute_or_load_stats(family["ft0"], stats_path=path)


def _fail(*_a: object, **_k: object) -> None:
    raise AssertionError("recomputed")


def test_aim_omega_one_reproduces_the_merge_bit_for_bit(merge_yaml, tmp_path: Path) -> None:
    plain = merge_yaml(tmp_path / "p.yaml", "ties", "parameters: {density: 0.5}\n")
    run_merge(load_merge_config(plain), tmp_path / "plain")
    aim = merge_yaml(
        tmp_path / "a.yaml",
        "ties",
        "parameters: {density: 0.5}\naim: {omega: 1.0, max_texts: 8}\n",
    )
    result = run_merge(load_merge_config(aim), tmp_path / "aim")
    assert result.aim_stats is not None and result.aim_stats.is_file()
    a, b = tensors(tmp_path / "plain"), tensors(tmp_path / "aim")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_aim_omega_zero_pins_the_busiest_channel(family, merge_yaml, tmp_path: Path) -> None:
    extra = "aim: {omega: 0.0, max_texts: 8, omega_by_module: {'*.mlp.*': 1.0}}\n"
    cfg = load_merge_config(merge_yaml(tmp_path / "a.yaml", "task_arithmetic", extra))
    result = run_merge(cfg, tmp_path / "aim")
    merged, base = tensors(tmp_path / "aim"), tensors(family["base"])
    stats, _ = load_stats(result.aim_stats)
    name = "model.layers.1.self_attn.q_proj.weight"
    c = int(stats[name].argmax())
    assert torch.equal(merged[name][:, c], base[name][:, c])
    assert not torch.equal(merged[name], base[name])  # other channels keep some merge
    embed = "model.embed_tokens.weight"  # embeddings are taken from the merge
    plain = load_merge_config(merge_yaml(tmp_path / "p.yaml", "task_arithmetic"))
    run_merge(plain, tmp_path / "plain")
    ref = tensors(tmp_path / "plain")
    assert torch.equal(merged[embed], ref[embed])
    mlp = "model.layers.1.mlp.up_proj.weight"  # omega 1 by pattern: untouched
    assert torch.equal(merged[mlp], ref[mlp])


def test_post_step_equals_one_command(family, merge_yaml, tmp_path: Path) -> None:
    extra = "aim: {omega: 0.4, max_texts: 8}\n"
    run_merge(
        load_merge_config(merge_yaml(tmp_path / "a.yaml", "linear", extra)),
        tmp_path / "one",
    )
    run_merge(load_merge_config(merge_yaml(tmp_path / "p.yaml", "linear")), tmp_path / "plain")
    apply_aim(
        tmp_path / "plain", family["base"], tmp_path / "post", AIMConfig(omega=0.4, max_texts=8)
    )
    a, b = tensors(tmp_path / "one"), tensors(tmp_path / "post")
    assert all(torch.equal(a[k], b[k]) for k in a)
    model, _ = load_model(tmp_path / "post")
    assert model.config.model_type == "llama"
