"""Two-process torchrun on CPU (gloo, FSDP2) reproduces the single-process loss trajectory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from burnish.io import read_jsonl, write_jsonl
from burnish.models import build_char_tokenizer, model_from_config, save_model, tiny_config
from burnish.tasks import mixture

WORKER = Path(__file__).with_name("dist_sft_worker.py")
DPO_WORKER = Path(__file__).with_name("dist_dpo_worker.py")
pytestmark = pytest.mark.distributed


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("WORLD_SIZE", None)
    return env


def _run(args: list[str], nproc: int, worker: Path | None = None) -> None:
    worker = worker or WORKER
    if nproc == 1:
        cmd = [sys.executable, str(worker), *args]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(nproc),
            "--standalone",
            str(worker),
            *args,
        ]
    log = Path(args[2] + ".log")
    with log.open("w") as f:
        res = subprocess.run(cmd, env=_env(), stdout=f, stderr=subprocess.STDOUT, timeout=300)
    assert res.returncode == 0, log.read_text()[-3000:]


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("dist")
    tok = build_char_tokenizer()
    save_model(model_from_config(tiny_config("llama", len(tok), 32, 2), seed=0), tok, root / "m")
    rows = [
        e.to_messages() for e in mixture(["sorting", "arith_chain", "reversal"], 40, "train", 0)
    ]
    write_jsonl(root / "data.jsonl", rows)
    return root / "m", root / "data.jsonl"


def test_two_ranks_match_one(job, tmp_path: Path) -> None:
    model, data = job
    _run([str(model), str(data), str(tmp_path / "one")], nproc=1)
    _run([str(model), str(data), str(tmp_path / "two")], nproc=2)
    one = read_jsonl(tmp_path / "one" / "metrics.jsonl")
    two = read_jsonl(tmp_path / "two" / "metrics.jsonl")
    assert len(one) == len(two) == 6
    # Same global batch, same per-token mean: only the summation order differs, so the
    # trajectories agree to float32 round-off (rtol 1e-4 over six AdamW steps).
    for a, b in zip(one, two, strict=True):
        assert a["loss_tokens"] == b["loss_tokens"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3)
    w1 = load_file(str(tmp_path / "one" / "final" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "final" / "model.safetensors"))
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)


def test_two_ranks_resume(job, tmp_path: Path) -> None:
    model, data = job
    out = str(tmp_path / "run")
    _run([model.as_posix(), str(data), out, "--stop", "3"], nproc=2)
    assert (tmp_path / "run" / "state" / "trainer_state.json").is_file()
    assert not (tmp_path / "run" / "final").exists()
    _run([model.as_posix(), str(data), out, "--resume"], nproc=2)
    _run([model.as_posix(), str(data), str(tmp_path / "ref")], nproc=2)
    a = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "ref" / "final" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["uniform", "adaptive"])
def test_osft_two_ranks_match_one(job, tmp_path: Path, mode: str) -> None:
    """OSFT runs data-parallel (full weights per rank, gradients summed, then projected)."""
    model, data = job
    _run([str(model), str(data), str(tmp_path / "one"), "--osft", mode], nproc=1)
    _run([str(model), str(data), str(tmp_path / "two"), "--osft", mode], nproc=2)
    one = read_jsonl(tmp_path / "one" / "metrics.jsonl")
    two = read_jsonl(tmp_path / "two" / "metrics.jsonl")
    assert [r["loss_tokens"] for r in one] == [r["loss_tokens"] for r in two]
    for a, b in zip(one, two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    w1 = load_file(str(tmp_path / "one" / "final" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "final" / "model.safetensors"))
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fsdp2_bf16_on_gpus(job, tmp_path: Path) -> None:
    """On GPUs the same path shards with FSDP2 and computes in bf16 (mixed_precision=auto)."""
    model, data = job
    nproc = min(2, torch.cuda.device_count())
    _run([str(model), str(data), str(tmp_path / "gpu"), "--device", "cuda"], nproc=nproc)
    rows = read_jsonl(tmp_path / "gpu" / "metrics.jsonl")
    assert len(rows) == 6
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert (tmp_path / "gpu" / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_dpo_two_ranks_match_one(job, tmp_path: Path) -> None:
    """DPO under torchrun (FSDP2, gloo): each rank packs its share of the pairs; the step's
    loss and rewards are those of the single process."""
    from tests.train.test_dpo import ROWS

    model, _ = job
    write_jsonl(tmp_path / "pairs.jsonl", ROWS)
    args = [str(model), str(tmp_path / "pairs.jsonl")]
    _run([*args, str(tmp_path / "one")], nproc=1, worker=DPO_WORKER)
    _run([*args, str(tmp_path / "two")], nproc=2, worker=DPO_WORKER)
    one = read_jsonl(tmp_path / "one" / "metrics.jsonl")
    two = read_jsonl(tmp_path / "two" / "metrics.jsonl")
    assert len(one) == len(two) == 3
    for a, b in zip(one, two, strict=True):
        for key in ("loss", "rewards/margins", "rewards/accuracies", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-6)
