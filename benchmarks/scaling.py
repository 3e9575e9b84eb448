"""Inference-time scaling benchmark: accuracy vs budget for every search algorithm, and the
token cost of KV forking against re-encoding every prefix each step.

    python benchmarks/scaling.py [--n 300] [--budgets 1,2,4,8,16,32] [--algos all] [--seeds 0,1,2]
                                 [--prm arith-prm|logprob] [--out benchmarks/results/scaling]

Policy `arith-policy`, PRM `arith-prm` (both zoo; `--prm logprob` weighs particles by the
policy's own token probabilities instead, a much weaker reward), held-out arith_chain test
problems (seed 0); every (algorithm, budget) cell is the mean accuracy over the search seeds.
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
from burnish.scaling.reward import LogProbReward, load_prm
from burnish.scaling.run import search_problems
from burnish.tasks import get_task

RESULTS = Path(__file__).parent / "results"


TOKENS = ("encoded", "reencode", "prm", "generated", "padded")


def run_once(policy, tok, task, prompts, algo, budget, seed, prm, fork=True):
    """Accuracy, wall time and mean tokens per problem of one search run.

    A fresh PRM per run: its score cache must not carry over between runs (that would
    hide PRM tokens and time)."""
    opts = SearchOptions(
        engine=HFEngine(policy, tok, fork=fork),
        reward=LogProbReward() if prm == "logprob" else load_prm(prm),
        extract=task.extract_answer,
    )
    t0 = time.perf_counter()
    rows = asyncio.run(search_problems(prompts, algo, budget, opts, seed=seed, concurrency=64))
    wall = time.perf_counter() - t0
    n = len(prompts)
    acc = sum(task.score(p, rows[i]["text"]) for i, p in enumerate(prompts)) / n
    return acc, wall, {k: sum(r["tokens"][k] for r in rows.values()) / n for k in TOKENS}


def run_cell(policy, tok, task, prompts, algo, budget, seeds, prm, fork=True):
    """One (algorithm, budget): accuracy and tokens averaged over the search seeds."""
    runs = [run_once(policy, tok, task, prompts, algo, budget, s, prm, fork) for s in seeds]
    return {
        "algorithm": algo,
        "budget": budget,
        "accuracy": round(sum(r[0] for r in runs) / len(runs), 4),
        "accuracy_per_seed": [round(r[0], 4) for r in runs],
        "wall_s": round(sum(r[1] for r in runs) / len(runs), 2),
        **{f"{k}_per_problem": round(sum(r[2][k] for r in runs) / len(runs), 1) for k in TOKENS},
    }


def targets(cells) -> dict:
    """The paper's two claims, checked on the measured cells (None where a cell is missing)."""
    acc = {(c["algorithm"], c["budget"]): c["accuracy"] for c in cells}
    pf = {b: a for (algo, b), a in acc.items() if algo == "particle_filtering"}
    above = {
        b: pf[b] > acc[("best_of_n", b)] and pf[b] > acc[("weighted_best_of_n", b)]
        for b in sorted(pf)
        if b >= 4 and ("best_of_n", b) in acc and ("weighted_best_of_n", b) in acc
    }
    best32 = [acc.get(("dvts", 32)), acc.get(("best_of_n", 32))]
    pf8_vs_32 = None
    if 8 in pf and all(a is not None for a in best32):
        pf8_vs_32 = pf[8] >= min(best32)  # "at least as accurate as DVTS or BoN at 32"
    return {
        "pf_above_bon_and_wbon_at_budget": above,
        "pf_above_bon_and_wbon_at_every_budget_ge_4": all(above.values()) if above else None,
        "pf_at_8": pf.get(8),
        "dvts_at_32": best32[0],
        "best_of_n_at_32": best32[1],
        "pf_at_8_matches_dvts_or_bon_at_32": pf8_vs_32,
    }


def plot(cells, path, prm="arith-prm"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for algo in dict.fromkeys(c["algorithm"] for c in cells):
        pts = sorted((c["budget"], c["accuracy"]) for c in cells if c["algorithm"] == algo)
        if algo == "greedy":  # one decode, whatever the budget
            ax.axhline(pts[0][1], color="black", linestyle="--", linewidth=1, label=algo)
            continue
        ax.plot(*zip(*pts, strict=True), marker="o", label=algo)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("budget (particles x sweeps x chains)")
    ax.set_ylabel("accuracy (arith_chain test)")
    ax.set_title(f"arith-policy + {prm}: accuracy vs budget")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--budgets", default="1,2,4,8,16,32")
    ap.add_argument("--algos", default="all")
    ap.add_argument("--seeds", default="0,1,2", help="search seeds to average over")
    ap.add_argument("--prm", default="arith-prm", help="PRM (zoo name or dir) or 'logprob'")
    ap.add_argument("--eff-budget", type=int, default=16)
    ap.add_argument("--out", default=str(RESULTS / "scaling"))
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    algos = list(ALGORITHMS) if args.algos == "all" else args.algos.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    policy, tok = load_model(resolve_model("arith-policy"))
    task = get_task("arith_chain")
    prompts = [e.prompt for e in task.generate(args.n, "test", seed=0)]
    cells = []
    for algo in algos:
        for b in [1] if algo == "greedy" else budgets:
            cells.append(run_cell(policy, tok, task, prompts, algo, b, seeds, args.prm))
            print(json.dumps(cells[-1]), flush=True)
    pf = "particle_filtering"
    one = (seeds[:1], args.prm)
    fork = run_cell(policy, tok, task, prompts, pf, args.eff_budget, *one)
    nofork = run_cell(policy, tok, task, prompts, pf, args.eff_budget, *one, fork=False)
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
        "seeds": seeds,
        "cells": cells,
        "targets": targets(cells),
        "efficiency": eff,
        "policy": "arith-policy",
        "prm": args.prm,
        "task": "arith_chain test seed 0",
    }
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(cells, out.with_suffix(".png"), Path(args.prm).name)
    print(
        f"\n## accuracy vs budget ({args.n} arith_chain test problems, mean of "
        f"{len(seeds)} search seeds)\n"
    )
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
    print("\n## the paper's targets, checked\n")
    print(json.dumps(payload["targets"], indent=2))


if __name__ == "__main__":
    main()
