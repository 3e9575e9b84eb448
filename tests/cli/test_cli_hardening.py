"""The CLI refuses to lose files, reports bad input in one line, and means what it says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_errors import one_error_line  # tests/cli is on sys.path (rootdir import mode)

from burnish.models.zoo import resolve_model


def _ops(prompt: str) -> int:
    return sum(prompt.count(op) for op in "+-*")


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x]


# ---------------------------------------------------------------- existing outputs


def test_sft_and_osft_refuse_an_existing_run(cli, tmp_path, chat_jsonl, cli_model_dir) -> None:
    out = tmp_path / "run"
    args = ("-m", cli_model_dir, "-d", chat_jsonl, "-o", out, "--set", "max_steps=1")
    rc, _, err = cli("sft", *args)
    assert rc == 0, err
    final = (out / "final" / "model.safetensors").read_bytes()
    for command in ("sft", "osft"):
        rc, _, err = cli(command, *args)
        assert rc == 2
        assert "--resume to continue it, --overwrite" in one_error_line(err)
    assert (out / "final" / "model.safetensors").read_bytes() == final
    rc, _, err = cli("sft", *args, "--resume", "--overwrite")
    assert rc == 2 and "choose one of --resume" in one_error_line(err)
    rc, _, err = cli("sft", "-m", cli_model_dir, "-d", chat_jsonl, "-o", chat_jsonl)
    assert rc == 2 and "is a file, not a folder" in one_error_line(err)


def test_file_outputs_need_overwrite(cli, tmp_path, cli_model_dir, chat_jsonl) -> None:
    existing = tmp_path / "exists.txt"
    existing.write_text("mine")
    cases = [
        ("tasks", "generate", "addition", "--n", "2", "-o", existing),
        ("eval", cli_model_dir, "--tasks", "addition", "--n", "1", "-o", existing),
        ("aim-stats", cli_model_dir, "zoo", "-o", existing),
    ]
    for args in cases:
        rc, _, err = cli(*args)
        assert rc == 2, args
        assert "--overwrite" in one_error_line(err)
    prepared = tmp_path / "p.safetensors"
    prepared.write_text("mine")
    rc, _, err = cli("data", "prepare", chat_jsonl, "-m", cli_model_dir, "-o", prepared)
    assert rc == 2 and "--overwrite" in one_error_line(err)
    assert existing.read_text() == "mine" and prepared.read_text() == "mine"
    rc, _, err = cli("tasks", "generate", "addition", "--n", "2", "-o", existing, "--overwrite")
    assert rc == 0, err
    assert len(_rows(existing)) == 2


def test_zoo_build_refuses_existing_models(cli, tmp_path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}")
    rc, _, err = cli("zoo", "build", "--names", "base", "--out", tmp_path)
    assert rc == 2
    assert "--overwrite" in one_error_line(err)
    assert (tmp_path / "base" / "config.json").read_text() == "{}"


def test_continual_refuses_an_existing_run(cli, tmp_path) -> None:
    out = tmp_path / "c"
    out.mkdir()
    (out / "matrix.json").write_text("{}")
    rc, _, err = cli("continual", "--tasks", "sorting,reversal", "-o", out)
    assert rc == 2 and "--resume" in one_error_line(err)


# ---------------------------------------------------------------- one-line errors


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--n", "0"), "--n"),
        (("--batch-size", "0"), "--batch-size"),
        (("--samples", "0"), "--samples"),
        (("--device", "cuda"), "no CUDA"),
        (("--device", "gpu"), "unknown device"),
    ],
)
def test_eval_bad_numbers_and_devices(cli, cli_model_dir, args, needle) -> None:
    rc, _, err = cli("eval", cli_model_dir, "--tasks", "addition", *args)
    assert rc == 2
    assert needle in one_error_line(err)


def test_scale_n_zero_is_refused(cli, tmp_path) -> None:
    rc, _, err = cli("scale", "arith-policy", "--algo", "sc", "--n", "0", "-o", tmp_path / "x")
    assert rc == 2
    assert "--n" in one_error_line(err)
    assert not (tmp_path / "x").exists()


def test_non_utf8_training_data(cli, tmp_path, cli_model_dir) -> None:
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n')
    rc, _, err = cli("sft", "-m", cli_model_dir, "-d", bad, "-o", tmp_path / "run")
    assert rc == 2
    assert "latin1.jsonl:1: not UTF-8" in one_error_line(err)


def test_model_without_chat_template(cli, tmp_path, chat_jsonl, cli_model_dir) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(cli_model_dir, bare)
    for name in ("chat_template.jinja",):
        (bare / name).unlink(missing_ok=True)
    cfg = json.loads((bare / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(cfg))
    rc, _, err = cli("eval", bare, "--tasks", "addition", "--n", "1")
    assert rc == 2
    assert "--chat-template FILE" in one_error_line(err)
    template = tmp_path / "chat.jinja"
    template.write_text(
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    rc, _, err = cli("eval", bare, "--tasks", "addition", "--n", "1", "--chat-template", template)
    assert rc == 0, err
    rc, _, err = cli(
        "sft",
        "-m",
        bare,
        "-d",
        chat_jsonl,
        "-o",
        tmp_path / "r",
        "--chat-template",
        template,
        "--set",
        "max_steps=1",
    )
    assert rc == 0, err
    rc, _, err = cli(
        "continual",
        "-m",
        bare,
        "--tasks",
        "sorting,reversal",
        "-o",
        tmp_path / "cl",
        "--samples",
        "8",
        "--eval-n",
        "2",
        "--set",
        "max_steps=1",
        "--set",
        "effective_batch_size=4",
        "--chat-template",
        template,
        "--no-progress",
    )
    assert rc == 0, err


def test_sft_trains_on_prepared_safetensors(cli, tmp_path, chat_jsonl, cli_model_dir) -> None:
    prepared = tmp_path / "train.safetensors"
    rc, _, err = cli("data", "prepare", chat_jsonl, "-m", cli_model_dir, "-o", prepared)
    assert rc == 0, err
    rc, out, err = cli(
        "sft", "-m", cli_model_dir, "-d", prepared, "-o", tmp_path / "run", "--set", "max_steps=1"
    )
    assert rc == 0, err
    assert "kept 10 of 10 samples" in out


def test_allow_pickle_flag_exists_where_the_advice_names_it(cli, tmp_path, cli_model_dir) -> None:
    pick = tmp_path / "pick"
    shutil.copytree(cli_model_dir, pick)
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(str(pick / "model.safetensors")), pick / "pytorch_model.bin")
    (pick / "model.safetensors").unlink()
    rc, _, err = cli("eval", pick, "--tasks", "addition", "--n", "1")
    assert rc == 2
    assert "--allow-pickle" in one_error_line(err)
    rc, _, err = cli("eval", pick, "--tasks", "addition", "--n", "1", "--allow-pickle")
    assert rc == 0, err


def test_usage_error_is_one_line(cli) -> None:
    rc, _, err = cli("eval", "base", "--tasks", "addition", "--n", "many")
    assert rc == 2
    line = one_error_line(err)
    assert "--n" in line and "burnish eval --help" in line


# ---------------------------------------------------------------- results mean what they say


def test_prm_without_card_is_refused_unless_kind_named(cli, tmp_path) -> None:
    out = tmp_path / "s.jsonl"
    rc, _, err = cli("scale", "arith-policy", "--prm", "base", "--n", "1", "-o", out)
    assert rc == 2
    assert "not a process reward model" in one_error_line(err) and "--prm-kind" in err
    rc, _, err = cli(
        "scale",
        "arith-policy",
        "--prm",
        "arith-prm",
        "--prm-kind",
        "two_class",
        "--n",
        "1",
        "-o",
        out,
    )
    assert rc == 2 and "its card says PRM kind 'likelihood'" in one_error_line(err)
    rc, _, err = cli(
        "scale",
        "arith-policy",
        "--prm",
        "base",
        "--prm-kind",
        "two_class",
        "--budget",
        "2",
        "--n",
        "1",
        "-o",
        out,
    )
    assert rc == 0, err


def test_eval_quantized_cache_takes_the_library_defaults(
    cli, cli_model_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    import burnish.kvcache as kv

    seen: list[dict] = []
    real = kv.build_kv_cache

    def spy(name, model=None, **options):
        seen.append(options)
        return real(name, model, **options)

    monkeypatch.setattr(kv, "build_kv_cache", spy)
    rc, _, err = cli(
        "eval",
        cli_model_dir,
        "--tasks",
        "addition",
        "--n",
        "2",
        "--kv-cache",
        "squat",
        "--kv-bits",
        "4",
    )
    assert rc == 0, err
    assert seen and all(o == {"bits": 4} for o in seen)  # no lambda/block restated


def test_scale_resume_refuses_another_configuration(cli, tmp_path) -> None:
    out = tmp_path / "s.jsonl"
    base = ("scale", "arith-policy", "--prm", "logprob", "--budget", "2", "-o", out)
    rc, _, err = cli(*base, "--n", "1")
    assert rc == 0, err
    rc, _, err = cli(*base, "--n", "2")
    assert rc == 2 and "--resume" in one_error_line(err)
    rc, _, err = cli(*base, "--n", "2", "--resume", "--temperature", "1.0")
    assert rc == 2
    assert "temperature was 0.8, this run has 1.0" in one_error_line(err)
    rc, _, err = cli(*base, "--n", "2", "--resume", "--prm", "arith-prm")
    assert rc == 2 and "prm was" in one_error_line(err)
    rc, _, err = cli(*base, "--n", "2", "--resume")
    assert rc == 0, err
    assert sorted(r["index"] for r in _rows(out)) == [0, 1]
    rc, _, err = cli(*base, "--n", "1", "--overwrite")
    assert rc == 0, err
    assert len(_rows(out)) == 1


def test_scale_own_problems_task_options_and_seeds(cli, tmp_path) -> None:
    problems = tmp_path / "p.jsonl"
    problems.write_text(
        json.dumps({"prompt": "chain 1+2+3", "answer": "6"})
        + "\n"
        + json.dumps({"prompt": "chain 2*3-1", "answer": 5})
        + "\n"
    )
    out = tmp_path / "own.jsonl"
    rc, _, err = cli(
        "scale", "arith-policy", "--algo", "greedy", "--problems", problems, "--n", "5", "-o", out
    )
    assert rc == 0, err
    rows = _rows(out)
    assert sorted(r["prompt"] for r in rows) == ["chain 1+2+3", "chain 2*3-1"]
    assert {r["gold"] for r in rows} == {"6", "5"}
    long = tmp_path / "long.jsonl"
    rc, _, err = cli(
        "scale",
        "arith-policy",
        "--algo",
        "greedy",
        "--n",
        "3",
        "--task-option",
        "min_operands=5",
        "--task-option",
        "max_operands=5",
        "--problem-seed",
        "3",
        "-o",
        long,
    )
    assert rc == 0, err
    prompts = [r["prompt"] for r in _rows(long)]
    assert all(_ops(p) == 4 for p in prompts)
    rc, _, err = cli(
        "scale",
        "arith-policy",
        "--algo",
        "greedy",
        "--n",
        "3",
        "--seed",
        "5",
        "--task-option",
        "min_operands=5",
        "--task-option",
        "max_operands=5",
        "--problem-seed",
        "3",
        "-o",
        tmp_path / "again.jsonl",
    )
    assert rc == 0, err
    assert sorted(r["prompt"] for r in _rows(tmp_path / "again.jsonl")) == sorted(prompts)
    rc, _, err = cli(
        "tasks",
        "generate",
        "arith_chain",
        "--n",
        "2",
        "--task-option",
        "min_operands=5",
        "--task-option",
        "max_operands=5",
        "-o",
        tmp_path / "t.jsonl",
    )
    assert rc == 0, err
    assert all(_ops(r["messages"][0]["content"]) == 4 for r in _rows(tmp_path / "t.jsonl"))


def test_osft_uses_the_cards_recommended_lr(cli, tmp_path, chat_jsonl) -> None:
    out = tmp_path / "run"
    rc, stdout, err = cli("osft", "-m", "base", "-d", chat_jsonl, "-o", out, "--set", "max_steps=1")
    assert rc == 0, err
    assert "recommended lr=0.001" in stdout
    assert json.loads((out / "config.json").read_text())["lr"] == 0.001
    rc, stdout, err = cli(
        "osft",
        "-m",
        "base",
        "-d",
        chat_jsonl,
        "-o",
        tmp_path / "r2",
        "--set",
        "max_steps=1",
        "--set",
        "lr=2e-4",
    )
    assert rc == 0, err
    assert "recommended" not in stdout
    assert json.loads((tmp_path / "r2" / "config.json").read_text())["lr"] == 2e-4


def test_saved_tokenizer_config_has_no_load_options(tmp_path) -> None:
    from burnish.models import load_model, save_model

    model, tok = load_model(resolve_model("base"))
    save_model(model, tok, tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "tokenizer_config.json").read_text())
    assert "local_files_only" not in cfg and "is_local" not in cfg


# ---------------------------------------------------------------- friction


def test_help_imports_no_torch_and_version_and_prog_name(tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    probe = (
        "import sys\nfrom burnish.cli import main\nrc = main(['--help'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\nsys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "burnish", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "Usage: burnish" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "burnish", "--version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("burnish ")


def test_long_work_shows_progress(monkeypatch: pytest.MonkeyPatch, tmp_path, chat_jsonl) -> None:
    """eval draws a bar over problems; osft's training bar says osft."""
    import importlib

    evaluate_mod = importlib.import_module("burnish.eval.evaluate")  # not the function
    sft_mod = importlib.import_module("burnish.train.sft")
    from burnish.progress import progress_bar

    labels: list[str] = []

    def spy(total, label, enabled=True, done=0):
        if enabled:
            labels.append(label)
        return progress_bar(total, label, False, done)

    monkeypatch.setattr(evaluate_mod, "progress_bar", spy)
    monkeypatch.setattr(sft_mod, "progress_bar", spy)
    from burnish.cli import main

    assert main(["eval", "base", "--tasks", "addition", "--n", "2"]) == 0
    assert (
        main(
            [
                "osft",
                "-m",
                "base",
                "-d",
                str(chat_jsonl),
                "-o",
                str(tmp_path / "r"),
                "--set",
                "max_steps=1",
            ]
        )
        == 0
    )
    assert labels == ["eval", "osft"]
