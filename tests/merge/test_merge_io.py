"""Streaming merge I/O: sharded in and out, loadable by plain transformers, atomic, lean."""

from __future__ import annotations

import json
import weakref
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from burnish.errors import ModelLoadError
from burnish.merge import LazyCheckpoint, load_merge_config, run_merge
from burnish.merge import lazy as lazy_module
from burnish.merge.writer import ShardedWriter, TensorSpec, plan_shards
from burnish.models import save_model


def read_all(directory: Path) -> dict[str, torch.Tensor]:
    out = {}
    for file in sorted(directory.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            out.update({k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118
    return out


def test_writer_round_trip_sharded(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    tensors = {
        "a": torch.randn(10, 7, generator=g),
        "b": torch.randn(3, generator=g).to(torch.bfloat16),
        "c": torch.arange(5),
        "d": torch.randn(40, 40, generator=g),
    }
    specs = [TensorSpec(k, tuple(v.shape), v.dtype) for k, v in tensors.items()]
    writer = ShardedWriter(tmp_path, specs, max_shard_bytes=400)
    for k, v in tensors.items():
        writer.write(k, v)
    weight_map = writer.finish()
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["weight_map"] == weight_map and len(set(weight_map.values())) == 2
    assert index["metadata"]["total_size"] == sum(v.numel() * v.itemsize for v in tensors.values())
    back = read_all(tmp_path)
    assert all(torch.equal(back[k], v) and back[k].dtype == v.dtype for k, v in tensors.items())


def test_plan_gives_big_tensors_their_own_shard() -> None:
    specs = [TensorSpec(n, (s,), torch.float32) for n, s in [("x", 10), ("y", 100), ("z", 10)]]
    assert [[s.name for s in sh] for sh in plan_shards(specs, 100)] == [["x"], ["y"], ["z"]]
    assert len(plan_shards(specs, 10**6)) == 1


def test_lazy_reads_sharded_checkpoint(family) -> None:
    ckpt = LazyCheckpoint(family["ft1"])
    assert len(set(ckpt.files.values())) > 1  # really sharded
    model = AutoModelForCausalLM.from_pretrained(str(family["ft1"]))
    state = model.state_dict()
    for name in ckpt.names():
        assert torch.equal(ckpt.read(name), state[name])
    assert ckpt.total_bytes == sum(v.numel() * 4 for k, v in state.items() if k != "lm_head.weight")


def test_sharded_merge_loads_in_plain_transformers(family, merge_yaml, tmp_path: Path, tok) -> None:
    cfg = load_merge_config(
        merge_yaml(tmp_path / "m.yaml", "dare_ties", "parameters: {density: 0.5}\n")
    )
    out = tmp_path / "merged"
    result = run_merge(cfg, out, max_shard_size=30_000)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(p.name for p in out.glob("*.safetensors"))
    assert result.shards == len(shards) > 1 and sorted(set(index["weight_map"].values())) == shards
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert set(index["weight_map"]) == {k for k in model.state_dict() if k != "lm_head.weight"}
    assert "lm_head.weight" not in index["weight_map"]  # tied: no separate output embedding
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    loaded = AutoTokenizer.from_pretrained(str(out))
    text = "chain 7+3*2-5"
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded.chat_template == tok.chat_template
    assert (out / "merge_config.yaml").is_file()


def test_merge_of_identical_models_is_the_model(family, tmp_path: Path) -> None:
    yaml = f"merge_method: ties\nbase_model: {family['base']}\nmodels:\n"
    yaml += f"  - model: {family['ft1']}\n  - model: {family['ft1']}\n"
    yaml += "parameters: {density: 1, weight: 1}\n"
    (tmp_path / "m.yaml").write_text(yaml)
    run_merge(load_merge_config(tmp_path / "m.yaml"), tmp_path / "out")
    ids = torch.tensor([[1, 5, 9, 12]])
    want = AutoModelForCausalLM.from_pretrained(str(family["ft1"]))(ids).logits
    got = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out"))(ids).logits
    assert torch.allclose(got, want, atol=1e-5)


def test_bf16_output(family, merge_yaml, tmp_path: Path) -> None:
    cfg = load_merge_config(merge_yaml(tmp_path / "m.yaml", "linear", "dtype: bfloat16\n"))
    run_merge(cfg, tmp_path / "out")
    assert {t.dtype for t in read_all(tmp_path / "out").values()} == {torch.bfloat16}
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "bfloat16"


def _write(tmp_path: Path, name: str, model, tok) -> Path:
    return save_model(model, tok, tmp_path / name)


def test_mismatched_shapes_name_the_tensor(family, tmp_path: Path, tiny_model, tok) -> None:
    wide = _write(tmp_path, "wide", tiny_model("llama", intermediate_size=96), tok)
    (tmp_path / "m.yaml").write_text(
        f"merge_method: task_arithmetic\nbase_model: {family['base']}\nmodels:\n"
        f"  - model: {family['ft0']}\n  - model: {wide}\nparameters: {{weight: 1}}\n"
    )
    with pytest.raises(ModelLoadError, match=r"tensor 'model\.layers\.0\.mlp\.down_proj\.weight'"):
        run_merge(load_merge_config(tmp_path / "m.yaml"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_other_architecture_refused(family, tmp_path: Path, tiny_model, tok) -> None:
    qwen = _write(tmp_path, "qwen", tiny_model("qwen2"), tok)
    (tmp_path / "m.yaml").write_text(
        f"merge_method: linear\nbase_model: {family['base']}\nmodels:\n  - model: {qwen}\n"
        "parameters: {weight: 1}\n"
    )
    with pytest.raises(ModelLoadError, match="architecture"):
        run_merge(load_merge_config(tmp_path / "m.yaml"), tmp_path / "out")


def test_missing_model_dir_named(family, tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        f"merge_method: linear\nmodels:\n  - model: {family['ft0']}\n  - model: /no/such/dir\n"
        "parameters: {weight: 1}\n"
    )
    with pytest.raises(ModelLoadError, match="/no/such/dir"):
        run_merge(load_merge_config(tmp_path / "m.yaml"), tmp_path / "out")


def test_interrupted_merge_leaves_nothing(
    family, merge_yaml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous result")
    real_write, calls = ShardedWriter.write, []

    def failing_write(self: ShardedWriter, name: str, tensor: torch.Tensor) -> None:
        calls.append(name)
        if len(calls) == 5:
            raise KeyboardInterrupt  # e.g. Ctrl-C mid-write
        real_write(self, name, tensor)

    monkeypatch.setattr(ShardedWriter, "write", failing_write)
    cfg = load_merge_config(merge_yaml(tmp_path / "m.yaml", "ties", "parameters: {density: 0.5}\n"))
    with pytest.raises(KeyboardInterrupt):
        run_merge(cfg, out, max_shard_size=30_000, overwrite=True)
    assert len(calls) == 5
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # old output untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.yaml", "out"]  # no temp dirs


def test_peak_live_input_tensors_stay_far_below_model_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model, tok, perturb
) -> None:
    """Count the bytes of tensors read from the inputs that are alive at any moment."""
    dirs = [
        _write(tmp_path, f"m{i}", perturb(tiny_model("llama", num_layers=8), i), tok)
        for i in range(4)
    ]
    models = "".join(f"  - model: {d}\n" for d in dirs[1:])
    (tmp_path / "m.yaml").write_text(
        f"merge_method: dare_ties\nbase_model: {dirs[0]}\nmodels:\n{models}"
        "parameters: {density: 0.5, weight: 0.3}\naim: {omega: 0.4, max_texts: 4}\n"
    )
    live, peak = [0], [0]
    real_read = LazyCheckpoint.read

    def counting_read(self: LazyCheckpoint, name: str) -> torch.Tensor:
        t = real_read(self, name)
        size = t.numel() * t.itemsize
        live[0] += size
        peak[0] = max(peak[0], live[0])
        weakref.finalize(t, lambda: live.__setitem__(0, live[0] - size))
        return t

    monkeypatch.setattr(lazy_module.LazyCheckpoint, "read", counting_read)
    result = run_merge(load_merge_config(tmp_path / "m.yaml"), tmp_path / "out")
    base = LazyCheckpoint(dirs[0])
    largest = max(base.nbytes(n) for n in base.names())
    assert live[0] == 0  # everything read was released
    assert peak[0] <= 4 * largest  # one tensor per input model (base + 3)
    assert peak[0] < result.input_bytes / 20
