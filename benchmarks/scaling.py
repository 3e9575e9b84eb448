"""Inference-time scaling benchmark: accuracy vs budget for every search algorithm, and the
token cost of KV forking against re-encoding every prefix each step.

    python benchmarks/scaling.py [--n 300] [--budgets 1,2,4,8,16,32] [--algos all]

Policy `arith-policy`, PRM `arith-prm` (both zoo), held-out arith_chain test problems, seed 0.
Writes benchmarks/results/scaling.json, scaling.png and prints Markdown tables. The efficiency
part runs particle filtering at N = --eff-budget twice on the same problems: with KV forking
(each step encodes only new tokens) and with fork=False (every particle's whole prefix
re-encoded each step, as a stateless OpenAI-server client does), and reports encoded tokens
per problem and wall time of both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from burnish.models.io import load_model
from burnish.models.zoo import resolve_model
from burnish.scaling.algorithms import ALGORITHMS, SearchOptions
from burnish.scaling.hf_engine import HFEngine
from burnish.scaling.reward import load_prm
from burnish.scaling.run import search_problems
from burnish.tasks import get_task

RESULTS = Path(__file__).parent / "results"


def run_cell(policy, tok, prm, task, prompts, algo, budget, fork=True):
    """Accuracy and mean tokens of one (algorithm, budget) on the prompts.

    A fresh PRM per cell: its score cache must not carry over between cells (that would
    hide PRM tokens and time)."""
    prm = load_prm("arith-prm")
    opts = SearchOptions(
        engine=HFEngine(policy, tok, fork=fork), reward=prm, extract=task.extract_answer
    )
    t0 = time.perf_counter()
    rows = asyncio.run(search_problems(prompts, algo, budget, opts, seed=0, concurrency=64))
    wall = time.perf_counter() - t0
    n = len(prompts)
    acc = sum(task.score(p, rows[i]["text"]) for i, p in enumerate(prompts)) / n
    mean = {
        k: sum(r["tokens"][k] for r in rows.values()) / n
        for k in ("encoded", "reencode", "prm", "generated", "padded")
    }
    return {
        "algorithm": algo,
        "budget": budget,
        "accuracy": round(acc, 4),
        "wall_s": round(wall, 2),
        **{f"{k}_per_problem": round(v, 1) for k, v in mean.items()},
    }


def plot(cells, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for algo in dict.fromkeys(c["algorithm"] for c in cells):
        pts = sorted((c["budget"], c["accuracy"]) for c in cells if c["algorithm"] == algo)
        ax.plot(*zip(*pts, strict=True), marker="o", label=algo)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("budget (particles x sweeps x chains)")
    ax.set_ylabel("accuracy (arith_chain test)")
    ax.set_title("arith-policy + arith-prm: accuracy vs budget")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--budgets", default="1,2,4,8,16,32")
    ap.add_argument("--algos", default="all")
    ap.add_argument("--eff-budget", type=int, default=16)
    ap.add_argument("--out", default=str(RESULTS / "scaling"))
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    algos = list(ALGORITHMS) if args.algos == "all" else args.algos.split(",")
    policy, tok = load_model(resolve_model("arith-policy"))
    prm = load_prm("arith-prm")
    task = get_task("arith_chain")
    prompts = [e.prompt for e in task.generate(args.n, "test", seed=0)]
    cells = []
    for algo in algos:
        for b in [1] if algo == "greedy" else budgets:
            cells.append(run_cell(policy, tok, prm, task, prompts, algo, b))
            print(json.dumps(cells[-1]), flush=True)
    fork = run_cell(policy, tok, prm, task, prompts, "particle_filtering", args.eff_budget)
    nofork = run_cell(
        policy, tok, prm, task, prompts, "particle_filtering", args.eff_budget, fork=False
    )
    eff = {
        "budget": args.eff_budget,
        "fork": fork,
        "reencode": nofork,
        "encoded_ratio": round(nofork["encoded_per_problem"] / fork["encoded_per_problem"], 2),
        "counted_ratio_same_run": round(
            fork["reencode_per_problem"] / fork["encoded_per_problem"], 2
        ),
        "wall_ratio": round(nofork["wall_s"] / fork["wall_s"], 2),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "n": args.n,
        "budgets": budgets,
        "cells": cells,
        "efficiency": eff,
        "policy": "arith-policy",
        "prm": "arith-prm",
        "task": "arith_chain test seed 0",
    }
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(cells, out.with_suffix(".png"))
    print(f"\n## accuracy vs budget ({args.n} arith_chain test problems)\n")
    print("| algorithm | " + " | ".join(f"N={b}" for b in budgets) + " |")
    print("|---|" + "---|" * len(budgets))
    for algo in algos:
        acc = {c["budget"]: c["accuracy"] for c in cells if c["algorithm"] == algo}
        print(
            f"| {algo} | "
            + " | ".join(f"{acc[b]:.3f}" if b in acc else "-" for b in budgets)
            + " |"
        )
    print(f"\n## encoded policy tokens per problem, particle filtering N={args.eff_budget}\n")
    print("| mode | encoded/problem | PRM tokens/problem | wall s | accuracy |")
    print("|---|---|---|---|---|")
    for name, c in (("KV forking", fork), ("re-encode every prefix", nofork)):
        print(
            f"| {name} | {c['encoded_per_problem']:.0f} | {c['prm_per_problem']:.0f} | "
            f"{c['wall_s']:.1f} | {c['accuracy']:.3f} |"
        )
    print(
        f"\nforking encodes {eff['encoded_ratio']}x fewer tokens "
        f"(counted in the forking run itself: {eff['counted_ratio_same_run']}x); "
        f"wall-time ratio {eff['wall_ratio']}x"
    )


if __name__ == "__main__":
    main()
