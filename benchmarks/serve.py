"""Serving benchmark: ``burnish serve`` under closed-loop load, fp and 2-bit KV caches.

For each model (the zoo's ``arith-policy``; SmolLM2-135M-Instruct when the ``real`` extra is
installed) and each KV cache (``none`` = fp, ``kivi`` and ``squat`` at 2 bits), one server is
started as a subprocess on a free loopback port (its torch limited to ``--server-threads``),
and the same requests are sent at each concurrency level C (1, 4, 16, 64): C client threads
each send the next request as soon as their previous one is answered, until all are done.
Every request is a ``/v1/completions`` call with a different task prompt, temperature 0,
``max_tokens`` fixed and ``ignore_eos`` on, so every level generates the same tokens.

Reported per level: requests/s, generated tokens/s, p50 / p99 latency, and the throughput
ratio to C = 1 (the same requests sent one by one, in the same run). The issue's target: at 16
concurrent clients at least 4x the one-by-one throughput (the zoo, fp cache, this CPU).

    python benchmarks/serve.py [--models zoo,smollm2] [--caches none,kivi,squat]
                               [--levels 1,4,16,64] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from burnish.io import atomic_write_text

RESULTS = Path(__file__).parent / "results"
MODELS = {  # name -> (burnish model argument, requests per level, max_tokens)
    "zoo": ("arith-policy", 128, 64),
    "smollm2": ("smollm2-135m-instruct", 32, 32),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list[str], threads: int) -> tuple[subprocess.Popen, str]:
    """``burnish serve ARGS`` on a free loopback port, torch limited to ``threads``; returns
    once /health answers (the other benchmarks start their servers with it too)."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.setdefault("HF_HUB_OFFLINE", "1")
    cmd = [sys.executable, "-m", "burnish", "serve", *args, "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--log-level", "warning"], env=env, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server failed: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not become healthy")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, a bounded wait, then kill."""
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def start_server(model: str, cache: str, bits: int, threads: int) -> tuple[subprocess.Popen, str]:
    args = [model, "--kv-cache", cache, "--kv-bits", str(bits)]
    return launch([*args, "--max-batch", "64", "--max-queue", "1024"], threads)


def prompts(n: int) -> list[str]:
    return [f"Q: {i % 50}+{(7 * i) % 90}-{i % 9}=" for i in range(n)]


def request(url: str, model: str, prompt: str, max_tokens: int) -> tuple[float, int]:
    """One completion; returns (latency s, completion tokens)."""
    host, port = url.removeprefix("http://").split(":")
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    body["ignore_eos"] = True
    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {data}")
    return time.perf_counter() - start, int(data["usage"]["completion_tokens"])


def level(url: str, model: str, texts: list[str], max_tokens: int, clients: int) -> dict:
    """Closed loop: ``clients`` threads, each sending the next request when answered."""
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda p: request(url, model, p, max_tokens), texts))
    wall = time.perf_counter() - start
    lat = sorted(r[0] for r in results)
    tokens = sum(r[1] for r in results)
    return {
        "clients": clients,
        "requests": len(texts),
        "wall_s": wall,
        "requests_per_s": len(texts) / wall,
        "tokens_per_s": tokens / wall,
        "p50_s": statistics.median(lat),
        "p99_s": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
    }


def run(name: str, cache: str, bits: int, levels: list[int], threads: int) -> list[dict]:
    model, n, max_tokens = MODELS[name]
    proc, url = start_server(model, cache, bits, threads)
    try:
        texts = prompts(n)
        request(url, model, texts[0], 4)  # warm up
        rows = []
        for c in levels:
            row = level(url, model, texts, max_tokens, c)
            rows.append(row)
            print(
                f"{name:8s} {cache:5s} C={c:3d}: {row['requests_per_s']:7.2f} req/s "
                f"{row['tokens_per_s']:8.1f} tok/s p50 {row['p50_s']:.2f}s p99 {row['p99_s']:.2f}s",
                flush=True,
            )
        base = rows[0]["tokens_per_s"] if levels[0] == 1 else None
        for row in rows:
            row["throughput_vs_one_by_one"] = None if base is None else row["tokens_per_s"] / base
        return rows
    finally:
        stop(proc)


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = doc["runs"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
    for key, rows in runs.items():
        xs = [r["clients"] for r in rows]
        axes[0].plot(xs, [r["tokens_per_s"] for r in rows], marker="o", label=key)
        axes[1].plot(xs, [r["p50_s"] for r in rows], marker="o", label=key)
    for ax, ylabel in zip(axes, ("generated tokens / s", "p50 latency (s)"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[0].set_title("burnish serve throughput (closed loop)")
    axes[1].set_title("latency")
    fig.tight_layout()
    fig.savefig(path)


def _csv(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", type=_csv, default=list(MODELS))
    p.add_argument("--caches", type=_csv, default=["none", "kivi", "squat"])
    p.add_argument("--bits", type=int, default=2)
    p.add_argument("--levels", type=lambda t: [int(x) for x in _csv(t)], default=[1, 4, 16, 64])
    p.add_argument("--server-threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    start = time.perf_counter()
    runs: dict[str, list[dict]] = {}
    for name in args.models:
        for cache in args.caches:
            key = f"{name}/{cache}" + ("" if cache == "none" else f"{args.bits}")
            runs[key] = run(name, cache, args.bits, args.levels, args.server_threads)
    zoo = runs.get("zoo/none")
    at16 = next((r for r in zoo or [] if r["clients"] == 16), None)
    doc = {
        "settings": {
            "models": {k: MODELS[k] for k in args.models},
            "caches": args.caches,
            "bits": args.bits,
            "levels": args.levels,
            "server_threads": args.server_threads,
            "workload": "closed loop; /v1/completions, temperature 0, ignore_eos, fixed max_tokens",
        },
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                    "cpus": os.cpu_count()},
        "runs": runs,
        "targets": {
            "zoo_fp_16_clients_vs_one_by_one": at16 and at16["throughput_vs_one_by_one"],
            "at_least_4x": bool(at16 and (at16["throughput_vs_one_by_one"] or 0) >= 4),
        },
        "wall_seconds": time.perf_counter() - start,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "serve.json", json.dumps(doc, indent=2) + "\n")
    plot(doc, args.out / "serve.png")
    print(json.dumps(doc["targets"], indent=2))
    print(f"wrote {args.out / 'serve.json'} and serve.png")


if __name__ == "__main__":
    main()
