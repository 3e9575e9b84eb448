"""``burnish dpo``: a run, an existing output, and one clear error per bad input."""

from __future__ import annotations

import json

from tests.cli.test_cli_errors import one_error_line
from tests.train.test_dpo import ROWS

from burnish.io import write_jsonl


def test_the_command_and_its_errors(cli, tmp_path) -> None:
    pairs_file = tmp_path / "pairs.jsonl"
    write_jsonl(pairs_file, ROWS)
    out = tmp_path / "run"
    args = [
        "dpo",
        "-m",
        "base",
        "-d",
        pairs_file,
        "-o",
        out,
        "--set",
        "max_steps=2",
        "--set",
        "effective_batch_size=3",
        "--set",
        "lr=1e-4",
    ]
    rc, stdout, err = cli(*args)
    assert rc == 0, err
    assert "margin" in stdout and json.loads((out / "summary.json").read_text())["steps"] == 2
    rc, _, err = cli(*args)
    assert rc == 2 and "--resume" in one_error_line(err)
    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, [{"prompt": "x", "rejected": "y"}])
    rc, _, err = cli("dpo", "-m", "base", "-d", bad, "-o", tmp_path / "b")
    assert rc == 2 and "row 1: missing `chosen`" in one_error_line(err)
    rc, _, err = cli(
        "dpo", "-m", "base", "-d", pairs_file, "-o", tmp_path / "c", "--set", "loss=kto"
    )
    assert rc == 2 and "loss" in one_error_line(err)
