"""``burnish taxonomy`` and ``burnish generate`` as a user runs them: the leaf table and one
error line per bad file; generation against ``burnish serve`` in a subprocess, killed with
SIGKILL mid-run and resumed to exactly the rows of an uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from tests.serve.conftest import subprocess_server

EXAMPLES = Path(__file__).parents[2] / "examples" / "taxonomy"
ADDITION = "compositional_skills/arithmetic/addition"
# A short flow: the zoo policy's context is 512 tokens, and its answers are what they are.
FLOW = {
    "name": "short_freeform",
    "blocks": [
        {"name": "questions", "type": "llm", "prompt": "{seed_question}", "n": 2,
         "parse": "text", "output": "question", "temperature": 1.0, "max_tokens": 12},
        {"name": "answers", "type": "llm", "prompt": "{question}", "parse": "text",
         "output": "answer", "temperature": 0.0, "max_tokens": 12},
        {"name": "nonempty", "type": "filter", "column": "answer", "op": "nonempty"},
    ],
}  # fmt: skip


def burnish(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "burnish", *args], capture_output=True,
                          text=True, **kw)  # fmt: skip


def test_taxonomy_lists_leaves_and_names_bad_files(tmp_path: Path) -> None:
    ok = burnish("taxonomy", str(EXAMPLES), "--json")
    assert ok.returncode == 0, ok.stderr
    leaves = json.loads(ok.stdout)
    assert len(leaves) == 7 and {x["kind"] for x in leaves} == {"freeform_skill", "knowledge"}
    root = tmp_path / "tax"
    shutil.copytree(EXAMPLES, root)
    leaf = root / ADDITION / "qna.yaml"
    doc = yaml.safe_load(leaf.read_text())
    doc["seed_examples"] = doc["seed_examples"][:3]
    leaf.write_text(yaml.safe_dump(doc, sort_keys=False))
    bad = burnish("taxonomy", str(root))
    assert bad.returncode == 2
    assert "addition/qna.yaml:" in bad.stderr and "needs at least 5 items, has 3" in bad.stderr
    assert "Traceback" not in bad.stderr


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "tax"
    (root / ADDITION).mkdir(parents=True)
    shutil.copy(EXAMPLES / ADDITION / "qna.yaml", root / ADDITION / "qna.yaml")
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump(FLOW, sort_keys=False))
    return root, flow


def test_generate_killed_and_resumed_gives_the_uninterrupted_rows(tmp_path: Path) -> None:
    root, flow = _setup(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with subprocess_server() as server:

        def cmd(out: str, cache: str, *extra: str) -> list[str]:
            return [sys.executable, "-m", "burnish", "generate", str(root), "--teacher",
                    server.base, "-o", str(tmp_path / out), "--flow",
                    f"freeform_skill={flow}", "--rounds", "4", "--chunk", "1",
                    "--cache-dir", str(tmp_path / cache), "--no-progress", *extra]  # fmt: skip

        whole = subprocess.run(cmd("whole", "cache_a"), capture_output=True, text=True, env=env)
        assert whole.returncode == 0, whole.stderr
        proc = subprocess.Popen(cmd("part", "cache_b"), stderr=subprocess.PIPE, text=True,
                                env=env)  # fmt: skip
        ledger = tmp_path / "part" / "progress.json"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (
                ledger.is_file()
                and json.loads(ledger.read_text())["leaves"].get(ADDITION, {}).get("samples", 0)
                >= 3
            ):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = json.loads(ledger.read_text())["leaves"][ADDITION]["samples"]
        assert 3 <= done < 20
        again = subprocess.run(cmd("part", "cache_b", "--resume"), capture_output=True,
                               text=True, env=env)  # fmt: skip
        assert again.returncode == 0, again.stderr
    name = f"leaves/{ADDITION}.jsonl"
    a = (tmp_path / "whole" / name).read_text().splitlines()
    b = (tmp_path / "part" / name).read_text().splitlines()
    assert len(a) == 40 and a == b  # 20 samples x 2 questions, none lost or duplicated
    report = json.loads((tmp_path / "part" / "generate.json").read_text())
    assert report["leaves"][ADDITION]["rows_in"]["questions"] == 20


def test_generate_without_a_server_is_one_error(tmp_path: Path) -> None:
    root, _ = _setup(tmp_path)
    r = burnish("generate", str(root), "--teacher", "http://127.0.0.1:9/v1", "-o",
                str(tmp_path / "out"), "--timeout", "2")  # fmt: skip
    assert r.returncode == 2 and "cannot reach the teacher" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


def test_mix_then_sft_trains_on_both_sets(cli, tmp_path: Path, cli_model_dir: Path) -> None:
    from burnish.io import read_jsonl, write_jsonl

    gen = tmp_path / "gen"
    for leaf in ("add", "rev"):
        rows = [{"id": f"{leaf}#{i}", "metadata": {"leaf": leaf, "kind": "freeform_skill"},
                 "messages": [{"role": "user", "content": f"{leaf} {i}"},
                              {"role": "assistant", "content": f"Answer: {i}"}]}
                for i in range(8)]  # fmt: skip
        write_jsonl(gen / "leaves" / f"{leaf}.jsonl", rows)
    facts = [{"id": f"facts#{i}", "metadata": {"leaf": "facts", "kind": "knowledge",
              "chunk": f"Lamp {i} is blue."},
              "messages": [{"role": "user", "content": f"What colour is lamp {i}?"},
                           {"role": "assistant", "content": "Blue."}]}
             for i in range(3)]  # fmt: skip
    write_jsonl(gen / "leaves" / "facts.jsonl", facts)
    mixed = tmp_path / "mixed"
    rc, out, err = cli("mix", gen, "-o", mixed, "--per-leaf", "5")
    assert rc == 0, err
    assert "10 skill rows (2 leaves x 5)" in " ".join(out.split())
    assert len(read_jsonl(mixed / "phase10.jsonl")) == 10 + 3 + 3
    rc, _, err = cli("mix", gen, "-o", mixed)
    assert rc == 2 and "--overwrite" in err
    for phase in ("phase07", "phase10"):
        run = tmp_path / phase
        args = ["sft", "-m", cli_model_dir, "-d", mixed / f"{phase}.jsonl", "-o", run]
        rc, out, err = cli(*args, "--set", "max_steps=2", "--set", "effective_batch_size=4")
        assert rc == 0, err
        assert (run / "final" / "model.safetensors").is_file()
    run = tmp_path / "phased"
    args = ["phases", "-m", cli_model_dir, "--mix", mixed, "-o", run, "--eval-tasks", "addition"]
    args += ["--eval-problems", "2", "--set", "epochs=1", "--set", "effective_batch_size=4"]
    rc, out, err = cli(*args, "--no-progress")
    assert rc == 0, err
    assert "knowledge: best epoch_1" in out and "skills: best epoch_1" in out
    assert (run / "final" / "model.safetensors").is_file()
