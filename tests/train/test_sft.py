"""The SFT recipe end to end: it fits a small task, writes its outputs, resumes exactly."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from burnish.config import load_config
from burnish.errors import BurnishError, ConfigError, DataError, OutputExistsError
from burnish.eval import evaluate
from burnish.io import read_jsonl, write_jsonl
from burnish.models import load_model
from burnish.tasks import get_task
from burnish.train import SFTConfig, run_sft
from burnish.train.sft import sft


def _write_task(path: Path, task: str, n: int) -> Path:
    return write_jsonl(path, [e.to_messages() for e in get_task(task).generate(n, "train")])


def test_sft_fits_comparison(tmp_path: Path, model_dir: Path) -> None:
    """A tiny random Llama (hidden 64, 2 layers) learns ``max a b c`` in ~250 steps.

    Chosen after trying counting, sorting and reversal at this size: those only reach the
    majority answer (counting ~0.3) or 0 in the same budget; comparison reaches ~0.9.
    """
    data = _write_task(tmp_path / "train.jsonl", "comparison", 2000)
    untrained, tok = load_model(model_dir)
    before = evaluate(untrained, tok, ["comparison"], n_problems=50)["comparison"].accuracy

    result = sft(
        str(model_dir),
        str(data),
        str(tmp_path / "run"),
        progress=False,
        lr=3e-3,
        effective_batch_size=64,
        epochs=8,
        max_seq_len=64,
        save_epoch_end=False,
        save_state=False,
        device="cpu",
        cache_dir=str(tmp_path / "cache"),
    )
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert result.steps == len(rows) == 8 * 32  # ceil(2000 / 64) = 32 steps an epoch
    first = statistics.fmean(r["loss"] for r in rows[:3])
    last = statistics.fmean(r["loss"] for r in rows[-3:])
    assert last < 0.25 * first, (first, last)  # ~4.6 -> ~0.3 observed

    trained, tok = load_model(result.final_model)
    res = evaluate(trained, tok, ["comparison"], n_problems=50)["comparison"]
    # Observed 0.0 -> 0.88; the thresholds leave room for numerical differences.
    assert res.accuracy >= 0.5
    assert res.accuracy >= before + 0.3


def test_sft_outputs(tmp_path: Path, model_dir: Path) -> None:
    data = _write_task(tmp_path / "train.jsonl", "addition", 100)
    result = sft(
        str(model_dir),
        str(data),
        str(tmp_path / "run"),
        progress=False,
        lr=1e-3,
        effective_batch_size=32,
        max_tokens_per_step=256,
        early_signal_steps=2,
        device="cpu",
        cache_dir=str(tmp_path / "cache"),
    )
    out = tmp_path / "run"
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # 100 samples / 32 -> 4 steps, 1 epoch
    assert rows[-1]["samples"] == 100
    for r in rows:
        for key in ("loss", "grad_norm", "lr", "tokens_per_s", "padding_share"):
            assert isinstance(r[key], float), key
        assert r["loss"] > 0 and r["grad_norm"] > 0 and r["tokens_per_s"] > 0
        assert r["lr"] == pytest.approx(1e-3)  # constant schedule, no warmup (the defaults)
        assert 0 <= r["padding_share"] < 1
    # 256 token slots per minibatch split each full batch (32 samples, ~600 tokens).
    assert [r["minibatches"] > 1 for r in rows] == [True, True, True, False]
    assert [r["loss_tokens"] > 300 for r in rows] == [True, True, True, False]

    summary = json.loads((out / "summary.json").read_text())
    signals = summary["early_signals"]
    assert signals["steps"] == 2
    assert signals["mean_loss"] == pytest.approx((rows[0]["loss"] + rows[1]["loss"]) / 2)
    assert signals["max_grad_norm"] == max(rows[0]["grad_norm"], rows[1]["grad_norm"])
    assert summary["steps"] == 4 and summary["final_loss"] == rows[-1]["loss"]
    assert result.early_signals == signals

    final, tok = load_model(out / "final")
    assert tok.eos_token_id == 2 and len(tok) == 103  # the char tokenizer is saved beside it
    epoch1, _ = load_model(out / "checkpoints" / "epoch_1")
    for p, q in zip(final.parameters(), epoch1.parameters(), strict=True):
        assert torch.equal(p, q)  # the last step ends the epoch: same weights
    original, _ = load_model(model_dir)
    assert not torch.equal(final.lm_head.weight, original.lm_head.weight)
    assert (out / "state" / "trainer_state.json").is_file()
    assert json.loads((out / "data_report.json").read_text())["samples_kept"] == 100
    assert SFTConfig.model_validate_json((out / "config.json").read_text()).lr == 1e-3
    assert (out / "loss.png").stat().st_size > 0


def test_sft_rejects_unknown_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="learning_rate: unknown key"):
        sft("m", "d.jsonl", str(tmp_path), progress=False, learning_rate=1.0)


def _cfg(tmp_path: Path, model_dir: Path, data: Path, name: str) -> SFTConfig:
    return load_config(
        SFTConfig,
        None,
        {
            "model": str(model_dir),
            "data": str(data),
            "output_dir": str(tmp_path / name),
            "lr": 3e-3,
            "lr_scheduler": "cosine",
            "warmup_steps": 2,
            "effective_batch_size": 16,
            "epochs": 2,
            "max_seq_len": 64,
            "device": "cpu",
            "cache_dir": str(tmp_path / "cache"),
        },
    )


def _stopped(cfg: SFTConfig, after: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``cfg`` (saving its state every ``after`` steps) and kill it as step ``after + 1``
    starts, as Ctrl-C would: the run leaves the state of step ``after`` and no final model."""
    import importlib

    sft_mod = importlib.import_module("burnish.train.sft")  # the module, not the function
    real, calls = sft_mod.train_step, []

    def dying(*args, **kwargs):
        if len(calls) == after:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(sft_mod, "train_step", dying)
        with pytest.raises(KeyboardInterrupt):
            run_sft(cfg.model_copy(update={"save_state_every_steps": after}), progress=False)


def test_resume_is_exact(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupt after 3 steps, resume: same weights and metrics as an uninterrupted run.

    Two epochs of 5 steps (80 samples / 16), AdamW with warmup + cosine, so the optimizer,
    scheduler, data order and epoch boundary all have to be restored. CPU, one process:
    bit-exact (torch.equal).
    """
    data = _write_task(tmp_path / "train.jsonl", "reversal", 80)
    straight = run_sft(_cfg(tmp_path, model_dir, data, "straight"), progress=False)
    cfg = _cfg(tmp_path, model_dir, data, "resumed")
    _stopped(cfg, 3, monkeypatch)
    assert len(read_jsonl(tmp_path / "resumed" / "metrics.jsonl")) == 3
    assert not (tmp_path / "resumed" / "final").exists()
    resumed = run_sft(cfg, resume=True, progress=False)
    assert resumed.steps == straight.steps == 10

    a = load_file(str(straight.final_model / "model.safetensors"))
    b = load_file(str(resumed.final_model / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows_a = read_jsonl(tmp_path / "straight" / "metrics.jsonl")
    rows_b = read_jsonl(tmp_path / "resumed" / "metrics.jsonl")
    drop = {"tokens_per_s"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows_a] == [
        {k: v for k, v in r.items() if k not in drop} for r in rows_b
    ]


def test_resume_refuses_other_config_or_missing_state(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _write_task(tmp_path / "train.jsonl", "reversal", 40)
    cfg = _cfg(tmp_path, model_dir, data, "run")
    with pytest.raises(BurnishError, match="no resumable state"):
        run_sft(cfg, resume=True, progress=False)
    _stopped(cfg, 1, monkeypatch)
    other = cfg.model_copy(update={"lr": 1e-2})
    with pytest.raises(BurnishError, match=r"cannot resume: lr was 0\.003, now 0\.01"):
        run_sft(other, resume=True, progress=False)
    changed = _write_task(tmp_path / "other.jsonl", "sorting", 40)
    with pytest.raises(BurnishError, match="cannot resume: the training samples differ"):
        run_sft(cfg.model_copy(update={"data": str(changed)}), resume=True, progress=False)


def test_resume_compares_content_not_paths(tmp_path: Path, model_dir: Path) -> None:
    """A moved run folder, a respelled data path and a raised max_steps still resume."""
    data = _write_task(tmp_path / "train.jsonl", "reversal", 80)
    cfg = _cfg(tmp_path, model_dir, data, "run").model_copy(
        update={"lr_scheduler": "constant", "warmup_steps": 0, "max_steps": 3}
    )
    straight = run_sft(
        cfg.model_copy(update={"output_dir": str(tmp_path / "s"), "max_steps": 6}), progress=False
    )
    run_sft(cfg, progress=False)  # 3 steps, complete
    moved = tmp_path / "moved"
    (tmp_path / "run").rename(moved)
    copy = tmp_path / "sub" / "copy.jsonl"
    copy.parent.mkdir()
    copy.write_bytes(data.read_bytes())
    again = cfg.model_copy(
        update={
            "output_dir": str(moved),
            "data": f"{copy.parent}/../sub/copy.jsonl",
            "max_steps": 6,
        }
    )
    resumed = run_sft(again, resume=True, progress=False)
    assert resumed.steps == 6
    a = load_file(str(straight.final_model / "model.safetensors"))
    b = load_file(str(resumed.final_model / "model.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_existing_run_folder_is_refused_and_overwrite_keeps_foreign_files(
    tmp_path: Path, model_dir: Path
) -> None:
    data = _write_task(tmp_path / "train.jsonl", "reversal", 20)
    cfg = _cfg(tmp_path, model_dir, data, "run").model_copy(update={"max_steps": 1})
    run_sft(cfg, progress=False)
    notes = tmp_path / "run" / "notes.txt"
    notes.write_text("mine")
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    with pytest.raises(OutputExistsError, match="--resume to continue it, --overwrite"):
        run_sft(cfg, progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before  # nothing touched
    (tmp_path / "run" / "checkpoints" / "stale").mkdir(parents=True)
    run_sft(cfg, progress=False, overwrite=True)
    assert notes.read_text() == "mine"
    assert not (tmp_path / "run" / "checkpoints" / "stale").exists()  # burnish's own: gone
    assert len(read_jsonl(tmp_path / "run" / "metrics.jsonl")) == 1
    with pytest.raises(OutputExistsError, match="is a file"):
        run_sft(cfg.model_copy(update={"output_dir": str(data)}), progress=False)


def test_max_tokens_per_step_is_a_hard_bound(tmp_path: Path, model_dir: Path) -> None:
    data = _write_task(tmp_path / "train.jsonl", "reversal", 40)  # samples of ~30 tokens
    cfg = _cfg(tmp_path, model_dir, data, "run").model_copy(
        update={"max_tokens_per_step": 10, "max_steps": 1}
    )
    with pytest.raises(ConfigError, match="more than max_tokens_per_step=10"):
        run_sft(cfg, progress=False)
    ok = cfg.model_copy(update={"max_tokens_per_step": 40, "output_dir": str(tmp_path / "ok")})
    run_sft(ok, progress=False)
    import burnish.train.sft as sft_mod
    from burnish.train.distributed import DistInfo

    ds = sft_mod.prepare_dataset(data, load_model(model_dir)[1], 64, tmp_path / "cache")
    mbs, _ = sft_mod.rank_minibatches(list(range(16)), ds, DistInfo(), 40, 40, 0, torch.float32)
    assert all(mb.input_ids.numel() <= 40 for mb in mbs)


def test_empty_turns_are_dropped_and_counted(tmp_path: Path, model_dir: Path) -> None:
    rows = [e.to_messages() for e in get_task("reversal").generate(10, "train")]
    rows[3]["messages"][1]["content"] = ""
    rows[5]["messages"][0]["content"] = "   "
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    cfg = _cfg(tmp_path, model_dir, data, "run").model_copy(update={"max_steps": 1})
    result = run_sft(cfg, progress=False)
    assert result.data_report.dropped_empty_turn == 2
    assert result.data_report.samples_kept == 8
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["dropped_empty_turn"] == 2


def test_prepared_safetensors_data_trains(tmp_path: Path, model_dir: Path, tok) -> None:
    from burnish.data import prepare_dataset

    data = _write_task(tmp_path / "train.jsonl", "reversal", 40)
    prepared = tmp_path / "train.safetensors"
    prepare_dataset(data, load_model(model_dir)[1], 512, use_cache=False).save(prepared)
    a = run_sft(
        _cfg(tmp_path, model_dir, data, "jsonl").model_copy(update={"max_steps": 2}), progress=False
    )
    b = run_sft(
        _cfg(tmp_path, model_dir, prepared, "prepared").model_copy(update={"max_steps": 2}),
        progress=False,
    )
    wa = load_file(str(a.final_model / "model.safetensors"))
    wb = load_file(str(b.final_model / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    other = tok.__class__.from_pretrained(str(model_dir))
    other.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(DataError, match="another tokenizer or chat template"):
        prepare_dataset(prepared, other, 512)


def test_killed_run_resumes_from_the_periodic_state(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill a run at step 7 (no epoch end, no clean stop): it resumes from the state saved
    every 2 steps (step 6) and ends with the same weights and metrics as an uninterrupted run."""
    import importlib

    sft_mod = importlib.import_module("burnish.train.sft")  # the module, not burnish.train.sft()

    data = _write_task(tmp_path / "train.jsonl", "reversal", 80)
    straight = run_sft(_cfg(tmp_path, model_dir, data, "straight"), progress=False)
    cfg = _cfg(tmp_path, model_dir, data, "killed").model_copy(update={"save_state_every_steps": 2})
    real_append = sft_mod.append_jsonl

    def dying_append(path, row):
        if row["step"] == 7:
            raise KeyboardInterrupt  # the process dies mid-epoch, before anything is saved
        real_append(path, row)

    monkeypatch.setattr(sft_mod, "append_jsonl", dying_append)
    with pytest.raises(KeyboardInterrupt):
        run_sft(cfg, progress=False)
    monkeypatch.setattr(sft_mod, "append_jsonl", real_append)
    state = json.loads((tmp_path / "killed" / "state" / "trainer_state.json").read_text())
    assert state["trainer"]["step"] == 6
    resumed = run_sft(cfg, resume=True, progress=False)
    a = load_file(str(straight.final_model / "model.safetensors"))
    b = load_file(str(resumed.final_model / "model.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [r["step"] for r in read_jsonl(tmp_path / "killed" / "metrics.jsonl")]
    assert steps == list(range(1, 11))
