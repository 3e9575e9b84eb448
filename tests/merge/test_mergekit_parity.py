"""Parity with mergekit (only where mergekit is installed: the `bench` extra).

On float32 inputs burnish's TIES is bit-identical to mergekit's. On bf16 inputs they differ
by design: mergekit computes in the inputs' dtype (delta, trim, sign election and sums in
bf16), burnish computes in float32 and rounds once at the end (see the README's merge notes).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from burnish.merge import LazyCheckpoint, load_merge_config, run_merge
from burnish.models.zoo import resolve_model

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mergekit") is None, reason="mergekit not installed (bench extra)"
)


def _mergekit_yaml() -> str:
    local = Path(sys.executable).parent / "mergekit-yaml"
    found = shutil.which("mergekit-yaml") or (str(local) if local.exists() else None)
    if found is None:
        pytest.skip("mergekit-yaml not on PATH")
    return found


@pytest.mark.parametrize("normalize", [True, False])
def test_ties_on_float32_inputs_is_bit_identical_to_mergekit(tmp_path, normalize) -> None:
    zoo = {n: str(resolve_model(n)) for n in ("base", "ft-addition", "ft-sorting", "ft-reversal")}
    weight = 1.0 if normalize else 0.5
    cfg = {
        "merge_method": "ties",
        "base_model": zoo["base"],
        "models": [
            {"model": zoo[n], "parameters": {"weight": weight, "density": 0.5}}
            for n in ("ft-addition", "ft-sorting", "ft-reversal")
        ],
        "parameters": {"normalize": normalize},
    }
    path = tmp_path / "ties.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    run_merge(load_merge_config(path), tmp_path / "burnish")
    flags = ["--no-cuda", "--quiet", "--no-write-model-card"]
    subprocess.run(
        [_mergekit_yaml(), str(path), str(tmp_path / "mergekit"), *flags],
        check=True,
        capture_output=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    ours, theirs = LazyCheckpoint(tmp_path / "burnish"), LazyCheckpoint(tmp_path / "mergekit")
    assert set(ours.names()) == set(theirs.names())
    for name in ours.names():
        assert torch.equal(ours.read(name), theirs.read(name)), name
