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
