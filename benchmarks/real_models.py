"""Every method on real checkpoints: wall time and peak RSS per command, and what it produced.

Each step is a real ``burnish`` command in its own process (wall time and the child's peak
RSS from ``wait4``), on SmolLM2-135M-Instruct and, where the architecture matters, Gemma-3-270m
(both from the ``real`` extra). After the runs the script reads what the commands wrote:
perplexity, SFT tokens/s, the OSFT subspace leak (recomputed from the start and final
weights), the merge's effect on perplexity, the scale accuracy.

    python benchmarks/real_models.py [--work DIR] [--out benchmarks/results] [--skip-gemma]

Writes ``real_models.json`` and ``real_models.png`` (time and peak RSS per step). The two
in-depth studies on SmolLM2 have their own scripts, run first (each takes 15-40 min on 2
cores); their results are folded in here, with the command that produced them:

- ``benchmarks/kvcache_real.py``: KL and perplexity against the fp cache, bytes vs fp16, for
  transformers' quanto cache, KIVI, SQuat and SQuat-pre at 2 and 4 bits (``kvcache_real.json``);
- ``benchmarks/sft_real.py``: SFT tokens/s and model-FLOPs utilisation of burnish packed vs
  TRL's padded, packing and padding-free modes (``sft_real.json``; needs TRL, the bench extra).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from burnish.io import atomic_write_text

OUT = Path(__file__).parent / "results"


def run(name: str, args: list[str], work: Path, log: list[dict]) -> dict:
    """Run ``burnish ARGS`` in its own process; record wall time and peak RSS."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BURNISH_CACHE": str(work / "cache")}
    cmd = [sys.executable, "-m", "burnish", *args]
    logfile = work / "logs" / (name.replace(" ", "_").replace("/", "_") + ".log")
    logfile.parent.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    with logfile.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    row = {
        "step": name,
        "command": "burnish " + " ".join(args),
        "exit": rc,
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
    }
    log.append(row)
    print(f"{name:>24}: exit {rc}, {row['wall_s']} s, peak RSS {row['peak_rss_mb']} MB", flush=True)
    if rc != 0:
        print(logfile.read_text()[-4000:])
    return row


def _mean_tokens_per_s(run_dir: Path) -> float:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    later = rows[1:] or rows  # the first step includes warm-up
    return round(sum(r["tokens_per_s"] for r in later) / len(later), 1)


def osft_leak(start_dir: Path, final_dir: Path, unfreeze: float) -> dict:
    """max |U_h^T dW V_h| over the targeted linears, with U_h, V_h from the start weights."""
    from safetensors.torch import load_file

    from burnish.train.osft import frozen_basis

    start = load_file(str(start_dir / "model.safetensors"))
    final = load_file(str(final_dir / "model.safetensors"))
    worst, count, biggest = 0.0, 0, 0.0
    for name, w0 in start.items():
        if ".layers." not in name or w0.dim() != 2 or not name.endswith("proj.weight"):
            continue
        rank = math.floor(min(w0.shape) * (1 - unfreeze))
        u, _, v = frozen_basis(w0.float(), rank)
        dw = final[name].float() - w0.float()
        worst = max(worst, float((u.T @ dw @ v).abs().max()))
        biggest = max(biggest, float(dw.abs().max()))
        count += 1
    return {"targets": count, "max_leak": worst, "max_update": biggest}


def _perplexity(out_json: Path) -> float | None:
    if not out_json.is_file():
        return None
    return round(json.loads(out_json.read_text())["perplexity"]["perplexity"], 3)


def _sets(**config: object) -> list[str]:
    """``--set KEY=VALUE`` for each training config override."""
    return [arg for k, v in config.items() for arg in ("--set", f"{k}={v}")]


# Short runs: enough steps to time a step and read its peak memory, no checkpoints.
_TRAIN = {"max_seq_len": 256, "save_state": "false", "save_epoch_end": "false", "lr": "1e-5"}


def _ppl_args(blocks: int) -> list[str]:
    """``burnish eval`` options for held-out perplexity over ``blocks`` blocks of 512 tokens."""
    return ["--perplexity", "--ppl-blocks", str(blocks), "--ppl-block-size", "512", "--no-progress"]


def import_and_perplexity(
    known: str, model_dir: Path, prefix: str, blocks: int, work: Path, log: list[dict]
) -> float | None:
    """Import the known model ``known`` to ``model_dir``, then its held-out perplexity."""
    run(f"{prefix}import", ["models", "import", known, "-o", str(model_dir)], work, log)
    out = f"ppl-{model_dir.name}.json"
    run(
        f"{prefix}eval --perplexity",
        ["eval", str(model_dir), *_ppl_args(blocks), "-o", out],
        work,
        log,
    )
    return _perplexity(work / out)


def smollm2_steps(work: Path, log: list[dict]) -> dict:
    """Import, perplexity, SFT, OSFT, merge + AIM, scale on SmolLM2-135M-Instruct."""
    m = work / "smollm2"
    res: dict = {}
    res["perplexity"] = import_and_perplexity("smollm2-135m-instruct", m, "", 32, work, log)
    for task in ("addition", "sorting"):
        run(
            f"data {task}",
            ["tasks", "generate", task, "--n", "512", "-o", f"{task}.jsonl"],
            work,
            log,
        )
    short = {**_TRAIN, "max_steps": 8, "effective_batch_size": 16}
    common = _sets(**short)
    for task in ("addition", "sorting"):
        run(
            f"sft {task}",
            ["sft", "-m", str(m), "-d", f"{task}.jsonl", "-o", f"sft-{task}", *common],
            work,
            log,
        )
    res["sft_tokens_per_s"] = _mean_tokens_per_s(work / "sft-addition")
    run(
        "osft",
        [
            "osft",
            "-m",
            str(m),
            "-d",
            "addition.jsonl",
            "-o",
            "osft",
            *_sets(**{**short, "lr": "1e-4", "unfreeze_rank_ratio": 0.3}),
        ],
        work,
        log,
    )
    res["osft_tokens_per_s"] = _mean_tokens_per_s(work / "osft")
    res["osft_leak"] = osft_leak(m, work / "osft" / "final", 0.3)
    (work / "merge.yaml").write_text(
        f"merge_method: ties\nbase_model: {m}\nmodels:\n"
        f"  - model: {work / 'sft-addition' / 'final'}\n"
        f"  - model: {work / 'sft-sorting' / 'final'}\n"
        "parameters: {weight: 0.5, density: 0.5}\n"
        "aim: {omega: 0.4, data: pydoc, max_texts: 32, block_size: 256}\n"
    )
    run("merge ties + aim", ["merge", "merge.yaml", "merged", "--no-progress"], work, log)
    run("eval merged", ["eval", "merged", *_ppl_args(32), "-o", "ppl-merged.json"], work, log)
    res["merged_perplexity"] = _perplexity(work / "ppl-merged.json")
    for cache in ("none", "squat_pre"):
        kv = ["--kv-cache", cache, "--kv-bits", "2", "--n", "32", "--no-progress"]
        out = f"eval-{cache}.json"
        run(f"eval kv {cache}", ["eval", str(m), "--tasks", "addition", *kv, "-o", out], work, log)
        if (work / out).is_file():
            res[f"addition_accuracy_kv_{cache}"] = json.loads((work / out).read_text())["results"][
                "addition"
            ]["accuracy"]
    scale = [
        "scale",
        str(m),
        "--prm",
        "logprob",
        "--algo",
        "pf",
        "--budget",
        "4",
        "--n",
        "8",
        "--task",
        "addition",
        "-o",
        "pf.jsonl",
    ]
    run("scale pf logprob", scale, work, log)
    summary = work / "pf.jsonl.summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        res["scale"] = {"accuracy": s["accuracy"], "tokens_per_problem": s["tokens_per_problem"]}
    return res


def gemma_steps(work: Path, log: list[dict]) -> dict:
    """Gemma-3-270m: a second family (sliding-window layers, a 262k vocabulary)."""
    g = work / "gemma"
    res: dict = {}
    res["perplexity"] = import_and_perplexity("gemma-3-270m", g, "gemma ", 16, work, log)
    template = work / "gemma-turns.jinja"  # Gemma-3-270m is a base model: a template to train
    template.write_text(
        "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}"
        "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>assistant\n"
        "{% endif %}"
    )
    sft = [
        "sft",
        "-m",
        str(g),
        "-d",
        "addition.jsonl",
        "-o",
        "sft-gemma",
        "--chat-template",
        str(template),
        *_sets(**{**_TRAIN, "max_steps": 5, "effective_batch_size": 8}),
    ]
    run("gemma sft", sft, work, log)
    if (work / "sft-gemma" / "metrics.jsonl").is_file():
        res["sft_tokens_per_s"] = _mean_tokens_per_s(work / "sft-gemma")
    return res


def fold_kv(path: Path) -> dict | None:
    """The held-out KV table of ``kvcache_real.json``: per cache and bits, KL, perplexity and
    bytes vs fp16; the tuned SQuat settings and the targets."""
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    keep = ("kl", "ppl", "ppl_fp", "bytes_ratio_longest", "skipped")
    table = {k: {f: v[f] for f in keep if f in v} for k, v in doc.get("heldout", {}).items()}
    return {
        "source": str(path),
        "command": "python benchmarks/kvcache_real.py --quanto-python PYTHON_WITH_QUANTO",
        "settings": doc.get("settings"),
        "heldout": table,
        "tuned": doc.get("chosen"),
        "targets": doc.get("targets"),
    }


def fold_sft(path: Path) -> dict | None:
    """SFT tokens/s, MFU and ratios per mode of ``sft_real.json``."""
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    keep = ("tokens_per_s", "mfu", "padding_share")
    modes = {k: {f: v[f] for f in keep if f in v} for k, v in doc.get("modes", {}).items()}
    return {
        "source": str(path),
        "command": doc.get("command"),
        "threads": doc.get("threads"),
        "gemm_flops": doc.get("gemm_flops"),
        "modes": modes,
        "ratios_burnish_packed_over": doc.get("ratios_burnish_packed_over"),
        "cross_boundary_attention": doc.get("cross_boundary_attention"),
        "targets": doc.get("targets"),
    }


def _plot_kv(ax, kv: dict | None) -> None:
    if not kv:
        ax.set_axis_off()
        ax.set_title("KV study: run benchmarks/kvcache_real.py")
        return
    rows = {k: v for k, v in kv["heldout"].items() if k != "fp" and isinstance(v.get("kl"), float)}
    ax.barh(list(rows), [v["kl"] for v in rows.values()], color="tab:purple")
    ax.set_xscale("log")
    ax.set_xlabel("held-out KL(fp || quantized), log scale")
    ax.invert_yaxis()
    ax.set_title("KV caches on SmolLM2 (pydoc, held out)")


def _plot_sft(ax, sft: dict | None) -> None:
    if not sft:
        ax.set_axis_off()
        ax.set_title("SFT study: run benchmarks/sft_real.py")
        return
    modes = sft["modes"]
    ax.barh(list(modes), [v.get("mfu", 0.0) for v in modes.values()], color="tab:green")
    ax.axvline(0.8, color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel("model-FLOPs utilisation (of the measured GEMM rate)")
    ax.invert_yaxis()
    ax.set_title(f"SFT on SmolLM2, {sft.get('threads')} thread(s)")


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in doc["steps"] if not r["step"].startswith("data")]
    names = [r["step"] for r in steps]
    fig, axes = plt.subplots(2, 2, figsize=(13, 0.35 * len(names) + 6), dpi=100)
    (a, b), (c, d) = axes
    a.barh(names, [r["wall_s"] for r in steps], color="tab:blue")
    a.set_xlabel("wall time (s)")
    a.invert_yaxis()
    b.barh(names, [r["peak_rss_mb"] for r in steps], color="tab:orange")
    b.set_xlabel("peak RSS (MB)")
    b.invert_yaxis()
    b.set_yticks([])
    _plot_kv(c, doc.get("kv"))
    _plot_sft(d, doc.get("sft_throughput"))
    fig.suptitle("burnish on real checkpoints (2 CPU cores)")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: temporary)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--skip-gemma", action="store_true")
    ap.add_argument(
        "--fold-only",
        action="store_true",
        help="keep the command rows of an earlier real_models.json; refold the two studies",
    )
    args = ap.parse_args()
    target = args.out / "real_models.json"
    if args.fold_only:
        doc = json.loads(target.read_text())
    else:
        work = args.work or Path(tempfile.mkdtemp(prefix="burnish-real-"))
        work.mkdir(parents=True, exist_ok=True)
        log: list[dict] = []
        doc = {"machine": f"{os.cpu_count()} CPUs", "work": str(work), "steps": log}
        doc["smollm2"] = smollm2_steps(work, log)
        if not args.skip_gemma:
            doc["gemma"] = gemma_steps(work, log)
    doc["kv"] = fold_kv(args.out / "kvcache_real.json")
    doc["sft_throughput"] = fold_sft(args.out / "sft_real.json")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(doc, indent=2) + "\n")
    plot(doc, args.out / "real_models.png")
    print(json.dumps({k: v for k, v in doc.items() if k != "steps"}, indent=2))


if __name__ == "__main__":
    main()
