"""Peak resident memory of a real merge, in its own process, against the inputs' size."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from burnish.merge import LazyCheckpoint

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import torch
    from transformers import AutoTokenizer  # imports done before the baseline
    from burnish.merge import load_merge_config, run_merge
    torch.set_num_threads(1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_merge(load_merge_config(sys.argv[1]), sys.argv[2])
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"grew_kb": after - before, "input_bytes": result.input_bytes}))
    """
)


@pytest.mark.slow
def test_merge_peak_rss_far_below_inputs(tmp_path: Path, tiny_model, tok, perturb) -> None:
    """4 models of ~46 MB (fp32, 16 layers): the merge process grows by a small fraction of
    the 186 MB it merges (peak RSS after imports, measured by the child itself)."""
    dirs = []
    for i in range(4):
        model = tiny_model("llama", hidden_size=256, num_layers=16, intermediate_size=688)
        model = perturb(model, seed=i) if i else model
        model.save_pretrained(str(tmp_path / f"m{i}"), max_shard_size="20MB")
        tok.save_pretrained(str(tmp_path / f"m{i}"))
        dirs.append(tmp_path / f"m{i}")
    models = "".join(f"  - model: {d}\n" for d in dirs[1:])
    cfg = tmp_path / "m.yaml"
    cfg.write_text(
        f"merge_method: ties\nbase_model: {dirs[0]}\nmodels:\n{models}"
        "parameters: {density: 0.5, weight: 1}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(cfg), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    inputs = sum(LazyCheckpoint(d).total_bytes for d in dirs)
    assert report["input_bytes"] == inputs > 150e6
    assert report["grew_kb"] * 1024 < inputs / 8, report
