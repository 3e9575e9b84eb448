"""Model merging: quality of every method with and without AIM, and cost against mergekit.

quality  Merge the zoo fine-tunes ft-addition, ft-sorting, ft-reversal of ``base`` with every
         registered method, plain and with AIM (omega 0.2, 0.4, 0.6; omega 1.0 is the plain
         merge, checked bit for bit), and score each source task on held-out problems, greedy.
cost     The same TIES merge of random Llama models (~127M parameters each with the defaults,
         bf16, sharded safetensors) by burnish and by mergekit (if installed), each run in its
         own subprocess, the tools alternating, ``--repeats`` runs each: wall time, the
         child's CPU time (user + sys) and its peak RSS, reported as median and range, with
         the machine's load average around each run (other work on the machine slows both).

    python benchmarks/merge.py                    # both parts
    python benchmarks/merge.py --part quality --n 64
    python benchmarks/merge.py --part cost --repeats 3 --layers 8 --hidden 1024

Use a Python where both burnish and mergekit import. Writes benchmarks/results/merge.json
(+ merge_quality.png; the part not run keeps its earlier results) and prints the tables.
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

OUT = Path(__file__).parent / "results"
TASKS = ["addition", "sorting", "reversal"]
SOURCES = ["ft-addition", "ft-sorting", "ft-reversal"]
OMEGAS = [0.2, 0.4, 0.6]
# Tuned once on this zoo (32 problems): weights 1/3 each (sum of task vectors = their mean),
# lambda 1, density 0.5, normalize off (TIES' disjoint mean over-weights entries that only one
# fine-tune moved); gamma 0.01 for breadcrumbs; linear is the plain average.
PARAMS: dict[str, dict] = {
    "linear": {"weight": 1 / 3},
    "task_arithmetic": {"weight": 1 / 3, "lambda": 1.0},
    "ties": {"weight": 1 / 3, "density": 0.5, "normalize": False},
    "dare_linear": {"weight": 1 / 3, "density": 0.5},
    "dare_ties": {"weight": 1 / 3, "density": 0.5},
    "breadcrumbs": {"weight": 1 / 3, "density": 0.5, "gamma": 0.01},
    "breadcrumbs_ties": {"weight": 1 / 3, "density": 0.5, "gamma": 0.01},
}


# ----------------------------------------------------------------------------- quality


def _score(model_dir: Path | str, n: int) -> dict[str, float]:
    from burnish.eval.evaluate import evaluate
    from burnish.models import load_model
    from burnish.models.zoo import resolve_model

    model, tok = load_model(resolve_model(model_dir))
    res = evaluate(model, tok, TASKS, n_problems=n, batch_size=64)
    acc = {t: r.accuracy for t, r in res.items()}
    acc["mean"] = sum(acc[t] for t in TASKS) / len(TASKS)
    return acc


def _same_weights(a: Path, b: Path) -> bool:
    from burnish.merge import LazyCheckpoint

    ca, cb = LazyCheckpoint(a), LazyCheckpoint(b)
    return ca.names() == cb.names() and all(torch.equal(ca.read(k), cb.read(k)) for k in ca.names())


def quality(args: argparse.Namespace) -> dict:
    from burnish.merge import MergeConfig, compute_or_load_stats, run_merge
    from burnish.models.zoo import resolve_model

    t0 = time.perf_counter()
    rows: dict[str, dict] = {name: _score(name, args.n) for name in ["base", *SOURCES]}
    for name in rows:
        print(f"  source {name:16s} " + _fmt(rows[name]), flush=True)
    stats_path = Path(args.tmp) / "aim_stats.safetensors"
    compute_or_load_stats(resolve_model("base"), None, stats_path)  # zoo mixture, once
    merges: dict[str, dict] = {}
    for method, params in PARAMS.items():
        merges[method] = {}
        models = [{"model": s} for s in SOURCES]
        if method == "linear":  # a linear merge averages base_model in; weight 0 keeps it out
            models.append({"model": "base", "parameters": {"weight": 0.0}})
        common = {
            "merge_method": method,
            "base_model": "base",
            "models": models,
            "parameters": params,
        }
        plain = Path(args.tmp) / f"{method}-plain"
        run_merge(MergeConfig(**common), plain)
        merges[method]["1.0"] = _score(plain, args.n)
        one = Path(args.tmp) / f"{method}-aim1"
        run_merge(MergeConfig(**common, aim={"omega": 1.0, "stats": str(stats_path)}), one)
        merges[method]["omega1_identical"] = _same_weights(plain, one)
        for omega in OMEGAS:
            out = Path(args.tmp) / f"{method}-aim{omega}"
            aim = {"omega": omega, "stats": str(stats_path)}
            run_merge(MergeConfig(**common, aim=aim), out)
            merges[method][str(omega)] = _score(out, args.n)
            shutil.rmtree(out)
        for key in ["1.0", *map(str, OMEGAS)]:
            print(f"  {method:16s} omega {key:4s} " + _fmt(merges[method][key]), flush=True)
    return {
        "n_problems": args.n,
        "decoding": "greedy",
        "params": PARAMS,
        "aim": {"data": "zoo task mixture (64 per task, train split)", "omegas": OMEGAS},
        "sources": rows,
        "merges": merges,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _fmt(acc: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.3f}" for k, v in acc.items())


def plot_quality(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [*OMEGAS, 1.0]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4), sharey=True)
    for ax, task in zip(axes, [*TASKS, "mean"], strict=True):
        for method, runs in result["merges"].items():
            ax.plot(xs, [runs[str(x)][task] for x in xs], marker="o", label=method)
        ref = result["sources"][f"ft-{task}"][task] if task != "mean" else None
        if ref is not None:
            ax.axhline(ref, color="gray", ls="--", lw=1, label=f"ft-{task} alone")
        ax.set_title(task)
        ax.set_xlabel("AIM omega (1.0 = plain merge)")
    axes[0].set_ylabel(f"greedy accuracy ({result['n_problems']} problems)")
    axes[-1].legend(fontsize=7)
    fig.suptitle("Merging ft-addition + ft-sorting + ft-reversal (base = base)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ----------------------------------------------------------------------------- cost


def build_models(root: Path, args: argparse.Namespace) -> list[Path]:
    """base + 3 perturbed copies of a random Llama, bf16, sharded; built one at a time."""
    from burnish.models import build_char_tokenizer, model_from_config, tiny_config

    cfg = tiny_config(
        "llama",
        vocab_size=32000,
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=16,
        num_kv_heads=8,
        intermediate_size=int(args.hidden * 2.75),
    )
    tok = build_char_tokenizer()
    dirs = []
    for i in range(4):
        model = model_from_config(cfg, seed=0).to(torch.bfloat16)
        if i:
            g = torch.Generator().manual_seed(i)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_((torch.randn(p.shape, generator=g) * 0.01).to(p.dtype))
        d = root / ("base" if i == 0 else f"ft{i}")
        model.save_pretrained(str(d), max_shard_size="200MB")
        tok.save_pretrained(str(d))
        dirs.append(d)
        del model
    return dirs


def _measure(cmd: list[str], env: dict) -> dict:
    """Run ``cmd`` in its own process: wall seconds, its CPU seconds (user + sys) and peak RSS.

    The child's own resource usage comes from ``os.wait4``; the 1-minute load average is read
    just before and just after the run.
    """
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    if status != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {err}")
    return {
        "seconds": round(wall, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _summary(runs: list[dict]) -> dict:
    """Median and [min, max] of each measured quantity over repeated runs."""
    out = {}
    for key in ("seconds", "cpu_seconds", "peak_rss_mb"):
        values = sorted(r[key] for r in runs)
        mid = len(values) // 2
        median = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
        out[key] = {"median": round(median, 2), "range": [values[0], values[-1]]}
    return out


def _ratios(summary: dict) -> dict:
    """mergekit / burnish for each median (> 1: burnish is faster or smaller)."""
    b, m = summary["burnish"], summary["mergekit"]
    return {
        f"mergekit_over_burnish_{key}": round(m[key]["median"] / b[key]["median"], 2)
        for key in ("seconds", "cpu_seconds", "peak_rss_mb")
    }


def _tensor_diff(a: Path, b: Path) -> dict:
    from burnish.merge import LazyCheckpoint

    ca, cb = LazyCheckpoint(a), LazyCheckpoint(b)
    diff, n, worst = 0, 0, 0.0
    for name in ca.names():
        x, y = ca.read(name).float(), cb.read(name).float()
        diff += int((x != y).sum())
        n += x.numel()
        worst = max(worst, float((x - y).abs().max()))
    return {"max_abs_diff": worst, "fraction_differing": diff / n}


def cost(args: argparse.Namespace) -> dict:
    root = Path(args.tmp) / "cost"
    root.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    base, *fts = build_models(root, args)
    print(f"  built 4 models in {time.perf_counter() - t0:.0f} s", flush=True)
    from burnish.merge import LazyCheckpoint

    input_bytes = sum(LazyCheckpoint(d).total_bytes for d in [base, *fts])
    params = LazyCheckpoint(base).total_bytes // 2
    cfg = {
        "merge_method": "ties",
        "base_model": str(base),
        "models": [{"model": str(d), "parameters": {"weight": 1.0, "density": 0.5}} for d in fts],
        "parameters": {"normalize": True},
        "dtype": "bfloat16",
    }
    cfg_path = root / "ties.yaml"
    cfg_path.write_text(json.dumps(cfg))  # JSON is YAML
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    runs: dict[str, list[dict]] = {"burnish": []}
    mergekit = shutil.which("mergekit-yaml") or (
        str(Path(sys.executable).parent / "mergekit-yaml")
        if (Path(sys.executable).parent / "mergekit-yaml").exists()
        else None
    )
    if mergekit and not args.no_mergekit:
        runs["mergekit"] = []
    for rep in range(args.repeats):
        for tool in runs:  # alternate the tools so neither always runs on a warm page cache
            out = root / f"out-{tool}"
            shutil.rmtree(out, ignore_errors=True)
            if tool == "burnish":
                cmd = [sys.executable, __file__, "_burnish", str(cfg_path), str(out)]
            else:
                cmd = [
                    mergekit,
                    str(cfg_path),
                    str(out),
                    "--no-cuda",
                    "--lazy-unpickle",
                    "--out-shard-size",
                    "200M",
                    "--quiet",
                    "--no-write-model-card",
                ]
            runs[tool].append(_measure(cmd, env))
            print(f"  {tool:9s} run {rep + 1}: {runs[tool][-1]}", flush=True)
    summary = {t: _summary(r) for t, r in runs.items()}
    result = {
        "model": {"layers": args.layers, "hidden": args.hidden, "params_per_model": params},
        "input_mb": round(input_bytes / 2**20, 1),
        "method": "ties, density 0.5, weight 1, normalize, dtype bfloat16",
        "repeats": args.repeats,
        "cpus": os.cpu_count(),  # both tools run with torch's default threads
        "note": "tools alternate; each run is its own process; loadavg_1min is the machine's "
        "1-minute load average before and after each run (other work running at the same "
        "time slows both tools)",
        "runs": runs,
        "summary": summary,
    }
    if "mergekit" in runs:
        from importlib.metadata import version

        result["mergekit_version"] = version("mergekit")
        result["parity_vs_mergekit"] = _tensor_diff(root / "out-burnish", root / "out-mergekit")
        result["ratios"] = _ratios(summary)
    return result


def _burnish_child(cfg: str, out: str) -> None:
    from burnish.merge import load_merge_config, run_merge

    run_merge(load_merge_config(cfg), out, max_shard_size="200MB")


# ----------------------------------------------------------------------------- main


def print_tables(result: dict) -> None:
    q = result.get("quality")
    if q:
        print(f"\nquality: greedy accuracy on {q['n_problems']} held-out problems per task")
        print(f"{'model':30s} " + " ".join(f"{t:>9s}" for t in [*TASKS, "mean"]))
        for name, acc in q["sources"].items():
            print(f"{name:30s} " + " ".join(f"{acc[t]:9.3f}" for t in [*TASKS, "mean"]))
        for method, runs in q["merges"].items():
            for key in ["1.0", *map(str, OMEGAS)]:
                label = f"{method} " + ("(plain)" if key == "1.0" else f"+AIM w={key}")
                acc = runs[key]
                print(f"{label:30s} " + " ".join(f"{acc[t]:9.3f}" for t in [*TASKS, "mean"]))
    c = result.get("cost")
    if c and "summary" in c:
        print(
            f"\ncost: TIES merge of 4 x {c['model']['params_per_model'] / 1e6:.0f}M-param "
            f"bf16 models ({c['input_mb']} MB of inputs), median [range] of {c['repeats']} runs"
        )
        for tool, m in c["summary"].items():
            print(
                f"  {tool:9s} wall {_mr(m['seconds'], 's')}  cpu {_mr(m['cpu_seconds'], 's')}  "
                f"peak RSS {_mr(m['peak_rss_mb'], 'MB')}"
            )
        loads = [x for r in c["runs"].values() for run in r for x in run["loadavg_1min"]]
        print(f"  load average (1 min) during the runs: {min(loads)}-{max(loads)}")
        if "ratios" in c:
            print(f"  ratios (mergekit / burnish): {c['ratios']}")
            print(f"  parity: {c['parity_vs_mergekit']}")


def _mr(m: dict, unit: str) -> str:
    return f"{m['median']:.1f} {unit} [{m['range'][0]:.1f}-{m['range'][1]:.1f}]"


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "_burnish":
        _burnish_child(sys.argv[2], sys.argv[3])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--part", choices=["all", "quality", "cost"], default="all")
    p.add_argument("--n", type=int, default=64, help="held-out problems per task")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3, help="runs per tool (cost)")
    p.add_argument("--no-mergekit", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=OUT / "merge.json", help="results file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("BURNISH_CACHE", tempfile.mkdtemp(prefix="burnish-bench-cache-"))
    path = args.json
    path.parent.mkdir(parents=True, exist_ok=True)
    result = json.loads(path.read_text()) if path.is_file() else {}
    result["machine"] = f"{platform.machine()}, torch {torch.__version__}, {args.threads} threads"
    with tempfile.TemporaryDirectory(prefix="burnish-merge-bench-") as tmp:
        args.tmp = tmp
        if args.part in ("all", "quality"):
            print("quality ...", flush=True)
            result["quality"] = quality(args)
            plot_quality(result["quality"], path.with_name("merge_quality.png"))
        if args.part in ("all", "cost"):
            print("cost ...", flush=True)
            result["cost"] = cost(args)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print_tables(result)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
