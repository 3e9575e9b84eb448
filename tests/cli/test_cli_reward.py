"""``burnish reward-eval`` with Dr.SoW on the zoo, and its errors."""

from __future__ import annotations

import json

from tests.cli.test_cli_errors import one_error_line

from burnish.io import write_jsonl


def test_reward_eval_with_drsow_on_the_zoo(cli, tmp_path) -> None:
    from burnish.tasks import get_task

    rows = []
    for ex in get_task("addition").generate(12, "test", seed=0):
        wrong = ex.answer.replace(ex.final, str(int(ex.final) + 7))
        rows.append({"prompt": ex.prompt, "chosen": ex.answer, "rejected": wrong, "subset": "add"})
    data = tmp_path / "pairs.jsonl"
    write_jsonl(data, rows)
    out = tmp_path / "r.json"
    args = ("reward-eval", data, "--strong", "ft-addition", "--weak", "base", "-o", out)
    rc, stdout, err = cli(*args, "--no-progress")
    assert rc == 0, err
    doc = json.loads(out.read_text())
    assert doc["subsets"]["add"]["n"] == 12 and doc["overall"] >= 0.75  # the fine-tune knows sums
    assert "overall" in stdout
    rc, _, err = cli("reward-eval", data, "--weak", "base")
    assert rc == 2 and "needs --strong" in one_error_line(err)


def test_label_then_reward_eval_reads_its_pairs(cli, tmp_path) -> None:
    out = tmp_path / "pairs.jsonl"
    args = (
        "label",
        "--task",
        "addition",
        "--n",
        "6",
        "--policy",
        "arith-policy",
        "--strong",
        "ft-addition",
        "--weak",
        "base",
        "-o",
        out,
        "--max-tokens",
        "16",
        "--chunk",
        "3",
    )
    rc, stdout, err = cli(*args, "--no-progress")
    assert rc == 0, err
    assert "pairs from 6 prompts" in stdout
    rc, _, err = cli(*args, "--no-progress")
    assert rc == 2 and "--resume" in one_error_line(err)
    rc, _, err = cli(*args, "--no-progress", "--resume")  # complete: nothing redone
    assert rc == 0, err
    rc, stdout, err = cli(
        "reward-eval", out, "--strong", "ft-addition", "--weak", "base", "--no-progress"
    )
    assert rc == 0, err
    assert "overall" in stdout and "1.000" in stdout  # chosen = the best by the same reward
    rc, _, err = cli("label", "--policy", "base", "-o", tmp_path / "x.jsonl")
    assert rc == 2 and "PROMPTS file or --task" in one_error_line(err)
