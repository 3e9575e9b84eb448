"""Inference-time scaling benchmark: accuracy vs budget for every search algorithm, and the
token cost of the engine's three KV modes.

    python benchmarks/scaling.py [--n 300] [--budgets 1,2,4,8,16,32] [--algos all] [--seeds 0,1,2]
                                 [--prm arith-prm|logprob] [--out benchmarks/results/scaling]
                                 [--eff-budget 16] [--eff-repeats 3] [--efficiency-only]
                                 [--eff-pool]

Policy `arith-policy`, PRM `arith-prm` (both zoo; `--prm logprob` weighs particles by the
policy's own token probabilities instead, a much weaker reward), held-out arith_chain test
problems (seed 0); every (algorithm, budget) cell is the mean accuracy over the search seeds.
Writes benchmarks/results/scaling.json, scaling.png and prints Markdown tables.

The efficiency part runs particle filtering and best-of-N at N = --eff-budget on the same
problems with the first search seed, once per HFEngine ``kv_mode``: "fork" (resampled particles
share their ancestor's KV row), "reprefill" (a KV row per particle, but a duplicate made by
resampling re-encodes its prefix into a fresh row: per-request caching without fork) and
"none" (every prefix re-encoded each step, as a stateless OpenAI-server client makes a server
without prefix cache do). It reports encoded policy tokens per problem, wall time (the
fastest of --eff-repeats runs; process CPU time beside it) and two ratios: reprefill / fork is
what forking itself saves, none / reprefill is what ordinary KV caching saves.
``--efficiency-only`` runs just this part and replaces the "efficiency" key of the existing
JSON, keeping the accuracy results; with ``--eff-pool`` the new timing runs are pooled with
the ones already there (for a machine shared with other work, where the least time of many
runs is the fair one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


TOKENS = ("prefill", "encoded", "reencode", "prm", "generated", "padded")
KV_MODES = ("fork", "reprefill", "none")
EFF_ALGOS = ("particle_filtering", "best_of_n")


def run_once(policy, tok, task, prompts, algo, budget, seed, prm, kv_mode="fork"):
    """Accuracy, wall time and mean tokens per problem of one search run.

    A fresh PRM per run: its score cache must not carry over between runs (that would
    hide PRM tokens and time)."""
    opts = SearchOptions(
        engine=HFEngine(policy, tok, kv_mode=kv_mode),
        reward=LogProbReward() if prm == "logprob" else load_prm(prm),
        extract=task.extract_answer,
    )
    t0 = time.perf_counter()
    rows = asyncio.run(search_problems(prompts, algo, budget, opts, seed=seed, concurrency=64))
    wall = time.perf_counter() - t0
    n = len(prompts)
    acc = sum(task.score(p, rows[i]["text"]) for i, p in enumerate(prompts)) / n
    return acc, wall, {k: sum(r["tokens"][k] for r in rows.values()) / n for k in TOKENS}


def run_cell(policy, tok, task, prompts, algo, budget, seeds, prm, kv_mode="fork"):
    """One (algorithm, budget): accuracy and tokens averaged over the search seeds."""
    runs = [run_once(policy, tok, task, prompts, algo, budget, s, prm, kv_mode) for s in seeds]
    return {
        "algorithm": algo,
        "budget": budget,
        "accuracy": round(sum(r[0] for r in runs) / len(runs), 4),
        "accuracy_per_seed": [round(r[0], 4) for r in runs],
        "wall_s": round(sum(r[1] for r in runs) / len(runs), 2),
        **{f"{k}_per_problem": round(sum(r[2][k] for r in runs) / len(runs), 1) for k in TOKENS},
    }


def efficiency_cell(policy, tok, task, prompts, algo, budget, seed, prm, repeats) -> dict:
    """Every KV mode of one algorithm on the same problems and seed.

    Tokens and accuracy do not depend on the mode (checked); wall time and process CPU time
    are the least of ``repeats`` runs per mode, the modes interleaved so load on the machine
    hits all alike (CPU time is less disturbed by other processes than wall time).
    """
    runs: dict[str, list] = {m: [] for m in KV_MODES}
    for _ in range(repeats):
        for mode in KV_MODES:
            cpu0 = time.process_time()
            run = run_once(policy, tok, task, prompts, algo, budget, seed, prm, mode)
            runs[mode].append((*run, time.process_time() - cpu0))
    modes = {}
    for mode, rs in runs.items():
        acc, _, tokens, _ = rs[0]
        assert all(r[0] == acc and r[2] == tokens for r in rs), f"{algo} {mode}: not repeatable"
        modes[mode] = {
            "accuracy": round(acc, 4),
            "wall_s": round(min(r[1] for r in rs), 2),
            "wall_s_runs": [round(r[1], 2) for r in rs],
            "cpu_s": round(min(r[3] for r in rs), 2),
            "cpu_s_runs": [round(r[3], 2) for r in rs],
            **{f"{k}_per_problem": round(tokens[k], 1) for k in TOKENS},
        }
    return {"modes": modes, "ratios": efficiency_ratios(modes)}


def pool_timings(cell: dict, previous: dict | None) -> dict:
    """``cell`` with the timing runs of an earlier invocation's ``previous`` cell added, mode by
    mode, where that mode's accuracy and tokens are identical (same work); times = the least."""
    prev_modes = (previous or {}).get("modes", {})
    for mode, c in cell["modes"].items():
        old = prev_modes.get(mode, {})
        same = [k for k in c if k == "accuracy" or k.endswith("_per_problem")]
        if not old or any(old.get(k) != c[k] for k in same):
            continue
        for key in ("wall_s", "cpu_s"):
            c[f"{key}_runs"] = old.get(f"{key}_runs", [old[key]]) + c[f"{key}_runs"]
            c[key] = min(c[f"{key}_runs"])
    cell["ratios"] = efficiency_ratios(cell["modes"])
    return cell


def efficiency_ratios(modes: dict) -> dict:
    """Encoded-token and wall-time ratios between the KV modes (bigger = first one costlier)."""

    def ratio(a: str, b: str, key: str) -> float:
        return round(modes[a][key] / modes[b][key], 2)

    pairs = {"forking": ("reprefill", "fork"), "kv_caching": ("none", "reprefill")}
    pairs["both"] = ("none", "fork")
    out = {}
    for name, (a, b) in pairs.items():
        out[f"{name}_encoded"] = ratio(a, b, "encoded_per_problem")
        out[f"{name}_wall"] = ratio(a, b, "wall_s")
        out[f"{name}_cpu"] = ratio(a, b, "cpu_s")
    fork = modes["fork"]
    out["counted_none_vs_fork_same_run"] = round(
        fork["reencode_per_problem"] / fork["encoded_per_problem"], 2
    )
    return out


def efficiency(policy, tok, task, prompts, args, seed: int, previous: dict | None = None) -> dict:
    """The KV-mode comparison for particle filtering and best-of-N (see the module docstring).

    ``previous``: an earlier result whose timing runs are pooled in where the settings match.
    """
    out = {
        "budget": args.eff_budget,
        "policy": "arith-policy",
        "prm": args.prm,
        "n": len(prompts),
        "seed": seed,
        "timing": "wall_s / cpu_s: least of wall_s_runs / cpu_s_runs (modes interleaved)",
        "modes": {
            "fork": "resampled particles share their ancestor's KV row (index_select)",
            "reprefill": "a KV row per particle; a duplicate made by resampling re-encodes "
            "its prefix into a fresh row; a start's N particles share the prompt row",
            "none": "every particle's whole prefix re-encoded at each step",
        },
        "ratios": {
            "forking": "reprefill / fork: what forking KV rows itself saves",
            "kv_caching": "none / reprefill: what keeping a KV cache per particle saves",
            "both": "none / fork",
        },
    }
    keys = ("budget", "policy", "prm", "n", "seed")
    same = previous is not None and all(previous.get(k) == out[k] for k in keys)
    for algo in EFF_ALGOS:
        out[algo] = efficiency_cell(
            policy, tok, task, prompts, algo, args.eff_budget, seed, args.prm, args.eff_repeats
        )
        if same:
            out[algo] = pool_timings(out[algo], previous.get(algo))
        print(json.dumps({algo: out[algo]["ratios"]}), flush=True)
    return out


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` through a temporary name (never half-written)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def print_efficiency(eff: dict) -> None:
    n, budget = eff["n"], eff["budget"]
    print(f"\n## KV modes at N={budget} ({n} problems, seed {eff['seed']}): policy tokens\n")
    print("| algorithm | mode | prefill/problem | encoded/problem | wall s | CPU s | accuracy |")
    print("|---|---|---|---|---|---|---|")
    for algo in EFF_ALGOS:
        for mode, c in eff[algo]["modes"].items():
            print(
                f"| {algo} | {mode} | {c['prefill_per_problem']:.0f} | "
                f"{c['encoded_per_problem']:.0f} | {c['wall_s']:.1f} | {c['cpu_s']:.1f} | "
                f"{c['accuracy']:.3f} |"
            )
    for algo in EFF_ALGOS:
        r = eff[algo]["ratios"]
        print(
            f"\n{algo}: forking itself {r['forking_encoded']}x fewer tokens "
            f"({r['forking_wall']}x wall, {r['forking_cpu']}x CPU); KV caching "
            f"{r['kv_caching_encoded']}x ({r['kv_caching_wall']}x wall, {r['kv_caching_cpu']}x "
            f"CPU); both {r['both_encoded']}x ({r['both_wall']}x wall, {r['both_cpu']}x CPU)"
        )


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


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--budgets", default="1,2,4,8,16,32")
    ap.add_argument("--algos", default="all")
    ap.add_argument("--seeds", default="0,1,2", help="search seeds to average over")
    ap.add_argument("--prm", default="arith-prm", help="PRM (zoo name or dir) or 'logprob'")
    ap.add_argument("--eff-budget", type=int, default=16)
    ap.add_argument("--eff-repeats", type=int, default=3, help="runs per KV mode (min wall)")
    ap.add_argument(
        "--efficiency-only",
        action="store_true",
        help="run only the KV-mode comparison; merge it into the existing JSON",
    )
    ap.add_argument(
        "--eff-pool",
        action="store_true",
        help="with --efficiency-only: pool timing runs with the JSON's earlier ones (same work)",
    )
    ap.add_argument("--out", default=str(RESULTS / "scaling"))
    return ap.parse_args()


def print_accuracy(cells, algos, budgets, n, seeds) -> None:
    print(f"\n## accuracy vs budget ({n} arith_chain test problems, mean of {len(seeds)} seeds)\n")
    print("| algorithm | " + " | ".join(f"N={b}" for b in budgets) + " |")
    print("|---|" + "---|" * len(budgets))
    for algo in algos:
        acc = {c["budget"]: c["accuracy"] for c in cells if c["algorithm"] == algo}
        print(
            f"| {algo} | "
            + " | ".join(f"{acc[b]:.3f}" if b in acc else "-" for b in budgets)
            + " |"
        )


def main() -> None:
    args = parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    algos = list(ALGORITHMS) if args.algos == "all" else args.algos.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    policy, tok = load_model(resolve_model("arith-policy"))
    task = get_task("arith_chain")
    prompts = [e.prompt for e in task.generate(args.n, "test", seed=0)]
    out = Path(args.out).with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.efficiency_only:
        payload = json.loads(out.read_text()) if out.exists() else {}
        previous = payload.get("efficiency") if args.eff_pool else None
        payload["efficiency"] = efficiency(policy, tok, task, prompts, args, seeds[0], previous)
        write_json(out, payload)
        print_efficiency(payload["efficiency"])
        return
    cells = []
    for algo in algos:
        for b in [1] if algo == "greedy" else budgets:
            cells.append(run_cell(policy, tok, task, prompts, algo, b, seeds, args.prm))
            print(json.dumps(cells[-1]), flush=True)
    payload = {
        "n": args.n,
        "budgets": budgets,
        "seeds": seeds,
        "cells": cells,
        "targets": targets(cells),
        "efficiency": efficiency(policy, tok, task, prompts, args, seeds[0]),
        "policy": "arith-policy",
        "prm": args.prm,
        "task": "arith_chain test seed 0",
    }
    write_json(out, payload)
    plot(cells, out.with_suffix(".png"), Path(args.prm).name)
    print_accuracy(cells, algos, budgets, args.n, seeds)
    print_efficiency(payload["efficiency"])
    print("\n## the paper's targets, checked\n")
    print(json.dumps(payload["targets"], indent=2))


if __name__ == "__main__":
    main()
