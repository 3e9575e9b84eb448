"""``burnish.train.phases``: multi-phase and stacked runs on a mix folder, the best epoch per
phase chosen by the evaluation, and resume across phases after an interruption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import burnish.train.phases as phases
from burnish.errors import ConfigError, DataError, OutputExistsError
from burnish.io import read_jsonl, write_jsonl
from burnish.train.phases import PhaseEval, run_phases


def _row(i: int, kind: str) -> dict:
    knowledge = kind == "k"
    user = f"Document:\nLamp {i} is red.\n\nWhat colour is lamp {i}?" if knowledge else f"add {i}+1"
    answer = "Red." if knowledge else f"Answer: {i + 1}"
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"id": f"{kind}{i}", "messages": messages, "metadata": {}, "unmask": knowledge}


@pytest.fixture
def mix_dir(tmp_path: Path) -> Path:
    out = tmp_path / "mix"
    write_jsonl(out / "phase07.jsonl", [_row(i, "k") for i in range(20)])
    write_jsonl(out / "phase10.jsonl", [_row(i, "s") for i in range(40)])
    return out


OPTIONS = {"lr": 1e-3, "epochs": 2, "effective_batch_size": 8}


def test_multi_phase_picks_the_best_epoch_and_chains(model_dir: Path, mix_dir: Path,
                                                     tmp_path: Path) -> None:  # fmt: skip
    run = tmp_path / "run"
    doc = run_phases(str(model_dir), mix_dir, run, "multi", PhaseEval(holdout=0.2), OPTIONS,
                     progress=False, log=lambda m: None)  # fmt: skip
    assert list(doc["phases"]) == ["knowledge", "skills"]
    k, s = doc["phases"]["knowledge"], doc["phases"]["skills"]
    assert set(k["scores"]) == {"epoch_1", "epoch_2"} == set(s["scores"])
    assert k["score"] == max(k["scores"].values()) and k["best"].endswith(
        max(k["scores"], key=k["scores"].get)
    )
    assert s["start"] == k["best"]
    assert k["lr"] == 1e-3 and s["lr"] == 5e-4  # the skills phase at half the rate
    trained = read_jsonl(run / "knowledge" / "train.jsonl")
    assert 0 < len(trained) < 20  # a held-out share was kept out of training
    assert (run / "final" / "model.safetensors").is_file()
    assert json.loads((run / "phases.json").read_text()) == doc


def test_stacked_is_one_phase_on_both_sets(model_dir: Path, mix_dir: Path,
                                          tmp_path: Path) -> None:  # fmt: skip
    ev = PhaseEval(tasks=("addition",), problems=4)
    doc = run_phases(str(model_dir), mix_dir, tmp_path / "run", "stacked", ev, OPTIONS,
                     progress=False, log=lambda m: None)  # fmt: skip
    assert list(doc["phases"]) == ["stacked"]
    assert len(read_jsonl(tmp_path / "run" / "stacked" / "train.jsonl")) == 60  # nothing held out
    assert doc["metric"] == "mean accuracy on addition"
    assert all(0 <= v <= 1 for v in doc["phases"]["stacked"]["scores"].values())


def test_interrupted_run_resumes_without_retraining_finished_phases(
    model_dir: Path, mix_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ev = PhaseEval(holdout=0.2)
    args = (str(model_dir), mix_dir)
    whole = run_phases(*args, tmp_path / "whole", "multi", ev, OPTIONS, progress=False,
                       log=lambda m: None)  # fmt: skip
    real_score, calls = phases._score, []

    def stop_in_skills(ckpt: Path, *a, **kw) -> float:
        calls.append(ckpt)
        if "skills" in str(ckpt):
            raise KeyboardInterrupt
        return real_score(ckpt, *a, **kw)

    run = tmp_path / "run"
    monkeypatch.setattr(phases, "_score", stop_in_skills)
    with pytest.raises(KeyboardInterrupt):
        run_phases(*args, run, "multi", ev, OPTIONS, progress=False, log=lambda m: None)
    monkeypatch.setattr(phases, "_score", real_score)
    knowledge_metrics = (run / "knowledge" / "run" / "metrics.jsonl").read_text()
    with pytest.raises(OutputExistsError, match="--resume to continue"):
        run_phases(*args, run, "multi", ev, OPTIONS, progress=False, log=lambda m: None)
    logs: list[str] = []
    doc = run_phases(*args, run, "multi", ev, OPTIONS, resume=True, progress=False,
                     log=logs.append)  # fmt: skip
    assert any("phase knowledge: done before" in m for m in logs)
    assert (run / "knowledge" / "run" / "metrics.jsonl").read_text() == knowledge_metrics
    for name in ("knowledge", "skills"):
        assert doc["phases"][name]["scores"] == whole["phases"][name]["scores"]
    with pytest.raises(ConfigError, match="other settings"):
        run_phases(*args, run, "stacked", ev, OPTIONS, resume=True, progress=False)


def test_missing_set_and_too_little_data_are_clear(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"phase07\.jsonl: missing"):
        run_phases(str(model_dir), tmp_path, tmp_path / "run", progress=False, log=lambda m: None)
    write_jsonl(tmp_path / "phase07.jsonl", [_row(0, "k")])
    write_jsonl(tmp_path / "phase10.jsonl", [_row(0, "s")])
    with pytest.raises(DataError, match="too few"):
        run_phases(str(model_dir), tmp_path, tmp_path / "run2", progress=False,
                   log=lambda m: None)  # fmt: skip
    with pytest.raises(ConfigError, match="unknown mode"):
        run_phases(str(model_dir), tmp_path, tmp_path / "run3", "double")
