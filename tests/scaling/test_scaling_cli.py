"""`burnish scale` end to end on the zoo policy: JSONL rows, summary, resume, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from burnish.cli.scale import scale_command
from burnish.errors import ConfigError
from burnish.scaling.run import run_search

app = typer.Typer()
app.command()(scale_command)


def test_scale_cli_writes_rows_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "sc.jsonl"
    res = CliRunner().invoke(
        app, ["arith-policy", "--algo", "sc", "--budget", "2", "--n", "3", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == [0, 1, 2]
    row = rows[0]
    for key in ("particles", "history", "tokens", "latency_s", "correct", "gold", "budget"):
        assert key in row
    assert row["tokens"]["generated"] > 0 and row["tokens"]["reencode"] > row["tokens"]["encoded"]
    summary = json.loads((tmp_path / "sc.jsonl.summary.json").read_text())
    assert summary["problems"] == 3
    assert summary["accuracy"] == round(sum(r["correct"] for r in rows) / 3, 4)


def test_resume_skips_done_problems_and_drops_torn_line(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    opts = {"temperature": 0.8}
    first = run_search("arith-policy", "logprob", "pf", 2, n=2, output=out, options=opts)
    lines = out.read_text().splitlines(keepends=True)
    kept = next(x for x in lines if json.loads(x)["index"] == 0)
    out.write_text(kept + '{"index": 1, "prompt": "chain 1+')  # killed mid-write
    second = run_search(
        "arith-policy", "logprob", "pf", 2, n=3, output=out, options=opts, resume=True
    )
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == [0, 1, 2]
    assert rows[0] == json.loads(kept)  # problem 0 not redone
    redone = next(r for r in rows if r["index"] == 1)
    orig = next(json.loads(x) for x in lines if json.loads(x)["index"] == 1)
    assert redone["text"] == orig["text"]  # per-problem seeding: same result when redone
    assert second["problems"] == 3 and first["problems"] == 2
    with pytest.raises(ConfigError, match="another search configuration \\(budget was 2"):
        run_search("arith-policy", "logprob", "pf", 4, n=3, output=out, options=opts, resume=True)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--algo", "nope"], "unknown algorithm"),
        (["--budget", "0"], "budget must be"),
        (["--algo", "pf"], "needs a reward model"),
    ],
)
def test_bad_input_is_a_config_error(tmp_path: Path, args: list[str], match: str) -> None:
    res = CliRunner().invoke(app, ["arith-policy", "--n", "1", "-o", str(tmp_path / "x"), *args])
    assert isinstance(res.exception, ConfigError)
    assert match in str(res.exception)
