"""Bad input gets one clear line: exit status 2, ``error: ...`` naming the problem, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from burnish.tasks import list_tasks


def one_error_line(err: str) -> str:
    """The single ``error: ...`` line a user error prints (nothing else on stderr)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_eval_missing_model_dir(cli) -> None:
    rc, _, err = cli("eval", "/nonexistent", "--tasks", "addition")
    assert rc == 2
    line = one_error_line(err)
    assert "/nonexistent" in line
    assert "no such model directory" in line


def test_eval_dir_without_config(cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = cli("eval", empty, "--tasks", "addition")
    assert rc == 2
    line = one_error_line(err)
    assert str(empty) in line
    assert "no config.json" in line


def test_eval_unknown_task_lists_known(cli) -> None:
    rc, _, err = cli("eval", "base", "--tasks", "nosuchtask")
    assert rc == 2
    line = one_error_line(err)
    assert "unknown task 'nosuchtask'" in line
    for name in list_tasks():
        assert name in line


def test_eval_samples_need_temperature(cli, cli_model_dir: Path) -> None:
    rc, _, err = cli("eval", cli_model_dir, "--tasks", "addition", "--n", "2", "--samples", "2")
    assert rc == 2
    assert "--temperature" in one_error_line(err)


def test_sft_unknown_config_key(cli, tmp_path: Path, cli_model_dir: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"model: {cli_model_dir}\ndata: f.jsonl\nlearning_rate: 0.1\n")
    rc, _, err = cli("sft", cfg)
    assert rc == 2
    line = one_error_line(err)
    assert "learning_rate" in line
    assert "unknown key" in line
    assert str(cfg) in line


def test_sft_unknown_override_key(cli, chat_jsonl: Path, cli_model_dir: Path) -> None:
    rc, _, err = cli("sft", "-m", cli_model_dir, "-d", chat_jsonl, "--set", "bogus=1")
    assert rc == 2
    assert "bogus: unknown key" in one_error_line(err)


def test_sft_override_without_equals(cli, chat_jsonl: Path, cli_model_dir: Path) -> None:
    rc, _, err = cli("sft", "-m", cli_model_dir, "-d", chat_jsonl, "--set", "lr")
    assert rc == 2
    line = one_error_line(err)
    assert "'lr'" in line
    assert "KEY=VALUE" in line


def test_sft_bad_jsonl_line(cli, tmp_path: Path, chat_jsonl: Path, cli_model_dir: Path) -> None:
    good = chat_jsonl.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*good[:2], '{"messages": [oops', *good[2:]]) + "\n")
    out = tmp_path / "out"
    rc, _, err = cli("sft", "--model", cli_model_dir, "--data", bad, "-o", out)
    assert rc == 2
    line = one_error_line(err)
    assert "bad.jsonl:3" in line
    assert "not valid JSON" in line
    assert not (out / "final").exists()  # nothing pretends to be a finished run


def test_data_prepare_char_outside_vocab(cli, tmp_path: Path, cli_model_dir: Path) -> None:
    row = {
        "messages": [
            {"role": "user", "content": "add 1+2"},
            {"role": "assistant", "content": "café"},
        ]
    }
    data = tmp_path / "accents.jsonl"
    data.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "d.safetensors"
    rc, _, err = cli("data", "prepare", data, "--model", cli_model_dir, "--out", out)
    assert rc == 2
    line = one_error_line(err)
    assert "'é'" in line
    assert "accents.jsonl:1" in line
    assert "vocabulary" in line
    assert not out.exists()


def test_usage_errors_exit_2_without_traceback(cli) -> None:
    """Click usage errors (missing option, unknown command) are shown, not raised."""
    rc, _, err = cli("tasks", "generate")
    assert rc == 2
    assert "Missing argument" in err
    rc, _, err = cli("eval", "base", "--tasks", "nosuchtask")
    assert rc == 2
    assert "nosuchtask" in one_error_line(err)
    rc, _, err = cli("nosuchcommand")
    assert rc == 2
    assert "No such command" in err
    rc, _, err = cli("eval", "base", "--tasks", "addition", "--n", "many")
    assert rc == 2
    assert "--n" in err


def test_console_script_bad_input(tmp_path: Path) -> None:
    """The real ``python -m burnish`` process: exit 2, one ``error:`` line, no traceback."""
    env = {**os.environ, "BURNISH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "burnish", "eval", "/nonexistent", "--tasks", "addition"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    line = one_error_line(proc.stderr)
    assert "/nonexistent" in line
    assert proc.stdout == ""
