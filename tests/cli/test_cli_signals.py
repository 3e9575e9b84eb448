"""Ctrl-C and SIGTERM on real ``burnish`` processes: exit 130 / 143, one line saying what was
kept and how to continue, nothing half-written left behind, and the run resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from burnish.io import write_jsonl
from burnish.models import model_from_config, save_model, tiny_config
from burnish.tasks import mixture

SIGNALS = [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")]


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "BURNISH_CACHE": str(tmp_path / "cache"),
        "COLUMNS": "200",
        "OMP_NUM_THREADS": "1",
    }


def _start(tmp_path: Path, *args: object) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "burnish", *(str(a) for a in args)]
    return subprocess.Popen(
        cmd,
        env=_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("never got ready")
        time.sleep(0.005)


def _stop(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def _last_line(err: str) -> str:
    return [ln for ln in err.splitlines() if ln.strip()][-1]


def _no_temporaries(root: Path) -> None:
    left = list(root.rglob(".*.tmp"))
    assert left == [], left


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory, tok) -> Path:
    root = tmp_path_factory.mktemp("sig-model")
    return save_model(model_from_config(tiny_config("llama", hidden_size=64)), tok, root / "m")


@pytest.mark.parametrize(("sig", "code", "name"), SIGNALS)
def test_sft_stops_cleanly_and_resumes(tmp_path, small_model, sig, code, name) -> None:
    data = write_jsonl(
        tmp_path / "train.jsonl", [e.to_messages() for e in mixture(["addition"], 4000, "train", 0)]
    )
    out = tmp_path / "run"
    args = (
        "sft",
        "-m",
        small_model,
        "-d",
        data,
        "-o",
        out,
        "--set",
        "effective_batch_size=8",
        "--set",
        "save_state_every_steps=2",
        "--set",
        "device=cpu",
    )
    proc = _start(tmp_path, *args)
    _wait_for(proc, lambda: _lines(out / "metrics.jsonl") >= 3)
    rc, err = _stop(proc, sig)
    assert rc == code, err
    line = _last_line(err)
    assert line.startswith(f"stopped by {name}: ") and "--resume" in line, err
    assert "Traceback" not in err
    _no_temporaries(tmp_path)
    step = json.loads((out / "state" / "trainer_state.json").read_text())["trainer"]["step"]
    assert f"after step {step}" in line
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "burnish",
            *map(str, args),
            "--resume",
            "--set",
            f"max_steps={step + 2}",
        ],
        env=_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, step + 3))


@pytest.fixture(scope="module")
def merge_inputs(tmp_path_factory: pytest.TempPathFactory, tok) -> Path:
    """Base + two fine-tunes big enough (~50 MB each) that a merge is caught mid-write."""
    root = tmp_path_factory.mktemp("sig-merge")
    cfg = tiny_config("llama", hidden_size=256, num_layers=4, intermediate_size=4096)
    lines = ["merge_method: ties", f"base_model: {root / 'base'}", "models:"]
    for i, name in enumerate(["base", "a", "b"]):
        model = model_from_config(cfg, seed=i)
        save_model(model, tok, root / name)
        if name != "base":
            lines.append(f"  - model: {root / name}\n    parameters: {{weight: 0.5}}")
    lines.append("parameters: {density: 0.5}")
    (root / "merge.yaml").write_text("\n".join(lines) + "\n")
    return root / "merge.yaml"


@pytest.mark.parametrize(("sig", "code", "name"), SIGNALS)
def test_merge_leaves_nothing_half_written(tmp_path, merge_inputs, sig, code, name) -> None:
    out = tmp_path / "merged"
    proc = _start(tmp_path, "merge", merge_inputs, out, "--no-progress")
    _wait_for(proc, lambda: any(tmp_path.glob(".merged.*.tmp")))
    rc, err = _stop(proc, sig)
    assert rc == code, err
    line = _last_line(err)
    assert line.startswith(f"stopped by {name}: nothing was written to"), err
    assert not out.exists()
    _no_temporaries(tmp_path)


@pytest.mark.parametrize(("sig", "code", "name"), SIGNALS)
def test_scale_stops_cleanly_and_resumes(tmp_path, sig, code, name) -> None:
    out = tmp_path / "s.jsonl"
    args = (
        "scale",
        "arith-policy",
        "--prm",
        "logprob",
        "--algo",
        "pf",
        "--budget",
        "4",
        "--concurrency",
        "1",
        "-o",
        out,
    )
    proc = _start(tmp_path, *args, "--n", "200")
    _wait_for(proc, lambda: _lines(out) >= 1)
    rc, err = _stop(proc, sig)
    assert rc == code, err
    line = _last_line(err)
    assert line.startswith(f"stopped by {name}: ") and "--resume" in line, err
    finished = _lines(out)
    assert f"holds {finished} finished problem" in line
    done = subprocess.run(
        [sys.executable, "-m", "burnish", *map(str, args), "--n", str(finished + 1), "--resume"],
        env=_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert _lines(out) == finished + 1
