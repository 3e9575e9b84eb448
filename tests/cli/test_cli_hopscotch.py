"""``burnish hopscotch`` / ``hopscotch-export`` end to end on the zoo, and their errors."""

from __future__ import annotations

import json

import torch
from tests.cli.test_cli_errors import one_error_line

from burnish.models import load_model
from burnish.models.skipping import SKIP_CONFIG_FILE, is_scaled, scaled_layers

FAST = ("--samples", "12", "--steps", "2", "--final-epochs", "1", "--no-progress")


def test_hopscotch_then_eval_and_export(cli, tmp_path) -> None:
    out = tmp_path / "out"
    rc, stdout, err = cli(
        "hopscotch", "base", "--skip", "1", "-o", out, "--tasks", "addition", *FAST
    )
    assert rc == 0, err
    assert "skipped attention of layer(s) [" in stdout
    skips = json.loads((out / SKIP_CONFIG_FILE).read_text())
    assert len(skips["skip_attention"]) == 1 and skips["selection"]["method"] == "exact"
    report = json.loads((out / "hopscotch_report.json").read_text())
    assert report["tasks"] == ["addition"] and len(report["rounds"][0]["scores"]) == 4
    rc, stdout, err = cli("eval", out, "--n", "4", "--no-progress")
    assert rc == 0, err
    assert "hopscotch: attention of layers" in stdout and "addition" in stdout
    assert "sorting" not in stdout  # the tasks it was calibrated on

    plain = tmp_path / "plain"
    rc, _, err = cli("hopscotch-export", out, "-o", plain)
    assert rc == 0, err
    assert not (plain / SKIP_CONFIG_FILE).exists()
    a, _ = load_model(out)
    b, _ = load_model(plain)
    assert is_scaled(a) and not is_scaled(b)
    ids = torch.tensor([[1, 40, 41, 42, 43, 44]])
    with torch.no_grad():
        torch.testing.assert_close(b(ids).logits, a(ids).logits, rtol=0, atol=1e-4)


def test_an_existing_output_needs_resume_or_overwrite(cli, tmp_path) -> None:
    out = tmp_path / "out"
    args = ("hopscotch", "base", "--skip", "1", "-o", out, "--method", "cheap", *FAST)
    assert cli(*args)[0] == 0
    rc, _, err = cli(*args)
    assert rc == 2 and "--resume" in one_error_line(err)
    rc, _, err = cli(*args, "--resume")  # the search is complete: only the final fit reruns
    assert rc == 0, err
    rc, _, err = cli(*args[: -len(FAST)], "--resume", *FAST[:-1], "--steps", "3", "--no-progress")
    assert rc == 2 and "other settings" in one_error_line(err)


def test_bad_requests_get_one_error(cli, tmp_path) -> None:
    rc, _, err = cli("hopscotch", "base", "--skip", "9", "-o", tmp_path / "a", *FAST)
    assert rc == 2 and "only 4 attention blocks" in one_error_line(err)
    rc, _, err = cli(
        "hopscotch", "base", "--skip", "1", "-o", tmp_path / "b", "--method", "best", *FAST
    )
    assert rc == 2 and "unknown selection method" in one_error_line(err)
    rc, _, err = cli("hopscotch-export", "base", "-o", tmp_path / "c")
    assert rc == 2 and "not a hopscotch checkpoint" in one_error_line(err)


def test_a_hopscotch_checkpoint_keeps_its_skips_through_sft(cli, tmp_path, chat_jsonl) -> None:
    out = tmp_path / "hs"
    assert (
        cli("hopscotch", "base", "--skip", "1", "-o", out, "--method", "attn-drop", *FAST)[0] == 0
    )
    skipped = json.loads((out / SKIP_CONFIG_FILE).read_text())["skip_attention"]
    tuned = tmp_path / "tuned"
    args = ["sft", "-m", out, "-d", chat_jsonl, "-o", tuned, "--set", "max_steps=2"]
    rc, _, err = cli(*args, "--set", "effective_batch_size=4")
    assert rc == 0, err
    m, _ = load_model(tuned / "final")
    assert [i for i, x in enumerate(scaled_layers(m)) if x.skip_attention] == skipped


def test_export_plain_writes_a_stock_checkpoint(cli, tmp_path) -> None:
    out = tmp_path / "plain"
    args = ("hopscotch", "base", "--skip", "2", "-o", out, "--method", "cheap", "--export", "plain")
    rc, _, err = cli(*args, *FAST)
    assert rc == 0, err
    assert not (out / SKIP_CONFIG_FILE).exists() and (out / "hopscotch_report.json").is_file()
    m, _ = load_model(out)
    assert not is_scaled(m)
    skipped = json.loads((out / "hopscotch_report.json").read_text())["skip_attention"]
    for i in skipped:  # a skipped block is a zero o_proj in the stock checkpoint
        assert not m.model.layers[i].self_attn.o_proj.weight.any()
