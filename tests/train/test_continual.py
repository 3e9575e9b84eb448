"""Continual runner: accuracy matrix, BWT, heatmap, resume, custom stage trainers, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from burnish.errors import ConfigError, OutputExistsError, TaskError
from burnish.train.continual import backward_transfer, run_continual

OPTS = {
    "max_steps": 2,
    "effective_batch_size": 8,
    "lr": 1e-3,
    "max_seq_len": 64,
    "save_epoch_end": False,
    "save_state": False,
    "device": "cpu",
}


def test_backward_transfer_by_hand() -> None:
    m = [[0.9, 0.1, 0.0], [0.6, 0.8, 0.1], [0.3, 0.5, 0.7]]
    # mean of (0.3 - 0.9, 0.5 - 0.8) = -0.45
    assert backward_transfer(m) == pytest.approx(-0.45)
    assert backward_transfer([[0.5]]) == 0.0


@pytest.mark.parametrize("method", ["sft", "osft"])
def test_two_task_sequence_writes_matrix_and_resumes(
    model_dir: Path, tmp_path: Path, method: str
) -> None:
    out = tmp_path / "cl"
    res = run_continual(str(model_dir), ["sorting", "reversal"], out, method, 40, 4, OPTS)
    assert len(res.matrix) == 2 and all(len(r) == 2 for r in res.matrix)
    assert all((a * 4).is_integer() for row in res.matrix for a in row)  # k of 4 problems
    stage2 = json.loads((out / "stage2-reversal" / "eval.json").read_text())["accuracy"]
    assert res.matrix[-1] == [stage2["sorting"], stage2["reversal"]]
    assert res.average_accuracy == pytest.approx(sum(res.matrix[-1]) / 2)
    doc = json.loads((out / "matrix.json").read_text())
    assert doc["matrix"] == res.matrix and doc["method"] == method
    assert (out / "matrix.png").read_bytes()[:4] == b"\x89PNG"
    stage1 = out / "stage1-sorting" / "eval.json"
    before = stage1.stat().st_mtime_ns
    # Without --resume the finished run is refused, not overwritten.
    with pytest.raises(OutputExistsError, match="--resume"):
        run_continual(str(model_dir), ["sorting", "reversal"], out, method, 40, 4, OPTS)
    # A resumed run finds both stages done: nothing retrained, same matrix.
    again = run_continual(
        str(model_dir), ["sorting", "reversal"], out, method, 40, 4, OPTS, resume=True
    )
    assert again.matrix == res.matrix
    assert stage1.stat().st_mtime_ns == before


def test_data_and_eval_seeds_are_exposed(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--samples N is no longer always the first N problems of seed 0, nor the evaluation."""
    import burnish.train.continual as continual_mod

    data: list[str] = []
    eval_seeds: list[int] = []
    real_evaluate = continual_mod.evaluate

    def record(start: str, cfg) -> Path:
        data.append(Path(cfg.data).read_text())
        return Path(start)

    def evaluate(*args, seed: int = 0, **kwargs):
        eval_seeds.append(seed)
        return real_evaluate(*args, seed=seed, **kwargs)

    monkeypatch.setattr(continual_mod, "evaluate", evaluate)
    tasks = ["sorting", "reversal"]
    for seed in (0, 1):
        out = tmp_path / f"s{seed}"
        run_continual(str(model_dir), tasks, out, record, 8, 2, OPTS, data_seed=seed, eval_seed=7)
    assert data[0] != data[2] and data[1] != data[3]  # stage data follows data_seed
    assert set(eval_seeds) == {7}


def test_custom_stage_trainer_gets_each_stage(model_dir: Path, tmp_path: Path) -> None:
    seen = []

    def identity(start: str, cfg) -> Path:
        seen.append((start, Path(cfg.data).name, cfg.trainable_scale))
        return Path(start)  # "training" that changes nothing: no forgetting at all

    res = run_continual(
        str(model_dir), ["sorting", "reversal", "counting"], tmp_path / "c", identity, 8, 4, OPTS
    )
    assert [s[0] for s in seen] == [str(model_dir)] * 3
    assert [s[2] for s in seen] == pytest.approx([1.0, 2 / 3, 1 / 3])  # frozen share grows
    assert res.backward_transfer == pytest.approx(0.0)
    assert res.method == "identity"


def test_errors(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least two tasks"):
        run_continual(str(model_dir), ["sorting"], tmp_path / "x")
    with pytest.raises(ConfigError, match="unknown continual method"):
        run_continual(str(model_dir), ["sorting", "reversal"], tmp_path / "x", "lora??")
    with pytest.raises(TaskError):
        run_continual(str(model_dir), ["sorting", "nope"], tmp_path / "x")
