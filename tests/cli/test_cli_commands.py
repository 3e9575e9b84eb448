"""Every command does its job in-process: tasks, data, sft (and --resume), eval, zoo, help."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from burnish.data.dataset import TokenizedDataset
from burnish.data.tokenize import validate_messages
from burnish.io import read_jsonl
from burnish.models.zoo import list_zoo
from burnish.tasks import list_tasks
from burnish.train.config import SFTConfig


def test_tasks_list(cli) -> None:
    rc, out, _ = cli("tasks", "list")
    assert rc == 0
    for name in list_tasks():
        assert name in out


def test_tasks_generate(cli, tmp_path: Path) -> None:
    out = tmp_path / "f.jsonl"
    rc, stdout, _ = cli("tasks", "generate", "addition,sorting", "--n", "5", "--out", out)
    assert rc == 0
    assert "wrote 10 rows" in stdout
    rows = read_jsonl(out)
    assert len(rows) == 10
    assert Counter(r["task"] for r in rows) == {"addition": 5, "sorting": 5}
    for i, r in enumerate(rows):
        validate_messages(r["messages"], f"row {i}")
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        assert r["final"] in r["messages"][-1]["content"]


def test_data_prepare(cli, tmp_path: Path, chat_jsonl: Path, cli_model_dir: Path) -> None:
    out = tmp_path / "d.safetensors"
    rc, stdout, _ = cli("data", "prepare", chat_jsonl, "--model", cli_model_dir, "--out", out)
    assert rc == 0
    assert out.is_file()
    assert '"samples_kept": 10' in stdout
    assert '"dropped_too_long": 0' in stdout
    assert f"wrote 10 samples to {out}" in stdout.replace("\n", "")
    ds = TokenizedDataset.load(out)
    assert len(ds) == 10
    assert ds.report.samples_kept == 10


def test_sft_run_then_resume(cli, tmp_path: Path, chat_jsonl: Path, cli_model_dir: Path) -> None:
    run = tmp_path / "run"
    args = ["sft", "--model", cli_model_dir, "--data", chat_jsonl, "-o", run]
    args += ["--set", "max_steps=2", "--set", "effective_batch_size=4", "--set", "lr=1e-3"]
    rc, out, err = cli(*args)
    assert rc == 0, err
    assert "final model:" in out
    assert (run / "final" / "config.json").is_file()
    assert (run / "final" / "model.safetensors").is_file()
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert [r["samples"] for r in rows] == [4, 8]
    assert all(r["lr"] == 1e-3 for r in rows)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2
    assert summary["final_loss"] == rows[-1]["loss"]
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((run / "config.json").read_text())["max_steps"] == 2

    # A run that ended by max_steps mid-epoch still saved its final state, so --resume finds
    # it complete: no step re-run, none lost, and the reported loss is the last logged one.
    assert (run / "state" / "trainer_state.json").is_file()
    rc, out, err = cli(*args, "--resume")
    assert rc == 0, err
    assert "steps 2" in out and "nan" not in out
    assert read_jsonl(run / "metrics.jsonl") == rows
    assert (run / "final" / "model.safetensors").is_file()


def test_sft_resume_without_state_is_one_line_error(
    cli, tmp_path: Path, chat_jsonl: Path, cli_model_dir: Path
) -> None:
    args = ["sft", "-m", cli_model_dir, "-d", chat_jsonl, "-o", tmp_path / "never-ran"]
    rc, _, err = cli(*args, "--resume")
    assert rc == 2
    assert err.strip().startswith("error: ")
    assert "no resumable state" in err
    assert len(err.strip().splitlines()) == 1


def test_sft_resume_after_full_epoch(
    cli, tmp_path: Path, chat_jsonl: Path, cli_model_dir: Path
) -> None:
    """A run that finished its epoch saved a state; --resume on it is a no-op that succeeds."""
    run = tmp_path / "run"
    args = ["sft", "-m", cli_model_dir, "-d", chat_jsonl, "-o", run]
    args += ["--set", "effective_batch_size=4", "--set", "lr=1e-3"]
    assert cli(*args)[0] == 0
    rows = read_jsonl(run / "metrics.jsonl")
    assert len(rows) == 3  # ceil(10 / 4)
    assert (run / "state").is_dir()
    summary = (run / "summary.json").read_text()

    rc, out, err = cli(*args, "--resume")
    assert rc == 0, err
    assert "steps 3" in out and "nan" not in out
    assert read_jsonl(run / "metrics.jsonl") == rows  # no step re-run, none lost
    assert json.loads((run / "summary.json").read_text()) == json.loads(summary)
    assert (run / "final" / "model.safetensors").is_file()


def test_eval_writes_json(cli, tmp_path: Path, cli_model_dir: Path) -> None:
    res = tmp_path / "res.json"
    rc, out, err = cli("eval", cli_model_dir, "--tasks", "addition", "--n", "4", "-o", res)
    assert rc == 0, err
    assert "addition" in out
    doc = json.loads(res.read_text())
    r = doc["results"]["addition"]
    assert (r["accuracy"] * 4).is_integer()  # k of the 4 problems right
    assert r["n_problems"] == 4
    assert r["samples_per_problem"] == 1
    assert r["pass_at_n"] is None


def test_eval_sampled(cli, tmp_path: Path) -> None:
    """A zoo name works as the model; sampling reports pass@n and maj@n."""
    res = tmp_path / "res.json"
    args = ["eval", "ft-addition", "-t", "addition,sorting", "--n", "8"]
    rc, out, err = cli(*args, "--samples", "2", "--temperature", "1.0", "-o", res)
    assert rc == 0, err
    assert "pass@2" in out
    assert "maj@2" in out
    results = json.loads(res.read_text())["results"]
    assert set(results) == {"addition", "sorting"}
    for r in results.values():
        assert r["samples_per_problem"] == 2
        assert r["accuracy"] <= r["pass_at_n"] <= 1.0
        assert 0.0 <= r["majority_at_n"] <= r["pass_at_n"]


def test_zoo_list(cli) -> None:
    rc, out, _ = cli("zoo", "list")
    assert rc == 0
    names = list_zoo()
    assert names
    for name in names:
        assert name in out


def test_help(cli) -> None:
    rc, out, _ = cli("--help")
    assert rc == 0
    for command in ("sft", "eval", "tasks", "data", "zoo", "quickstart"):
        assert command in out


def test_sft_help_lists_every_config_field(cli) -> None:
    rc, out, _ = cli("sft", "--help")
    assert rc == 0
    for field in SFTConfig.model_fields:
        assert f"{field}:" in out, field
    assert "max_tokens_per_step" in out


def test_command_help_is_reflowed_prose() -> None:
    """Typer keeps a docstring's line breaks; every command's help has one line per prose
    paragraph (so the terminal wraps it once), and indented blocks are kept as written."""
    from burnish.cli import _reflow, app

    doc = """First line.

    A paragraph broken
    over two lines.

      indented
      block
    """
    assert (
        _reflow(doc) == "First line.\n\nA paragraph broken over two lines.\n\n  indented\n  block"
    )
    groups = [app, *(g.typer_instance for g in app.registered_groups)]
    infos = [i for g in groups for i in g.registered_commands]
    assert len(infos) >= 15
    for info in infos:
        for para in (info.help or "").split("\n\n"):
            if not any(line.startswith((" ", "-", "$")) for line in para.splitlines()):
                assert "\n" not in para, (info.name, para)
