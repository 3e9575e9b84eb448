"""Quantized KV caches on a real model: KIVI, SQuat, SQuat-pre (and transformers' quanto cache).

SmolLM2-135M-Instruct (Llama, 30 layers, 9 query / 3 KV heads, head dim 64) on held-out real
text (the pydoc corpus, ``test`` split). Protocol, per prompt length (default 512, 1024, 2048
tokens, a few prompts each, batched): prefill the prompt into the cache, then teacher-force the
next ``--continuation`` real tokens one at a time through it. Each step's next-token
distribution is compared with the fp cache's (DynamicCache): mean KL(fp || quantized) over all
steps and prompts, and the continuation's perplexity. Bytes are what each cache holds at the
end (``nbytes()['total']``) over fp16 K + V of the same tokens. G = R = 32 throughout.
Each prompt's prefill runs once, in fp, and is replayed into every cache
(:mod:`burnish.kvcache.replay`: these caches attend the prefill in fp and quantize it after,
so the replayed cache is the one the model's own prefill would leave; tested).

Also measured, on the calibration (``train``) split:

- the query spectrum per layer and KV head: the share of the stacked queries' energy
  (second moment) in their top-k singular directions, after and before RoPE;
- a tuning grid of SQuat's ``lam``, ``rank`` and ``block_size`` (2 bits, SQuat and SQuat-pre).
  The grid feeds the continuation ``--tune-step`` tokens per forward (8: eight times fewer
  steps; what is quantized when moves by at most that many tokens); the best setting by mean
  KL is then measured on the held-out split with the real protocol (one token per step).

transformers' QuantizedCache needs the optimum-quanto backend; if this interpreter lacks it,
``--quanto-python`` names one that has it (with burnish importable), which runs those rows as a
peer process; otherwise they are recorded as skipped. CPU, one thread, no fused kernels.

    python benchmarks/kvcache_real.py [--quanto-python /path/to/python] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from transformers import DynamicCache, PreTrainedModel

from burnish.data.corpus import corpus_blocks
from burnish.io import atomic_write_text
from burnish.kvcache import KIVICache, SQuatCache, SQuatPreCache
from burnish.kvcache.replay import PrefillStates, record_prefill, replay_prefill
from burnish.kvcache.rope import RopeFrame, unrotate
from burnish.models import load_model
from burnish.models.zoo import resolve_model

warnings.filterwarnings("ignore")
MODEL = "smollm2-135m-instruct"
G = R = 32
TOP_K = (1, 4, 8, 16, 32)
LAMS = (0.01, 0.03, 0.1, 0.3)  # lam_scale 'moment' (SQuatConfig's default)
RESIDUAL_LAMS = (0.3, 1.0)  # lam_scale 'residual'
RANKS = (4, 8)
BLOCKS = (8, 16)  # tried at the best (lam, rank); block 4 is the grid's own
Prompts = list[tuple[int, torch.Tensor]]  # (prompt length L, ids [n, L + C])
Recorded = list[tuple[int, torch.Tensor, PrefillStates]]  # (L, ids, the fp prefill's states)


# ---- data and protocol ---------------------------------------------------------------------
def make_prompts(tok, split: str, lengths: Iterable[int], per_length: int, cont: int) -> Prompts:
    """Per length ``L``: ``per_length`` corpus blocks of exactly ``L + cont`` tokens, spread
    evenly over the split; ``[(L, ids [n, L + cont])]``."""
    out = []
    for length in lengths:
        blocks = [
            b
            for b in corpus_blocks(tok, split, block_size=length + cont)
            if len(b) == length + cont
        ]
        if not blocks:
            raise SystemExit(f"no {split} text of {length + cont} tokens")
        step = max(len(blocks) // per_length, 1)
        out.append((length, torch.tensor(blocks[::step][:per_length])))
    return out


def record(model: PreTrainedModel, prompts: Prompts) -> Recorded:
    """Run each prompt's prefill once (fp) and keep its states for replaying into caches."""
    return [(length, ids, record_prefill(model, ids[:, :length])) for length, ids in prompts]


def teacher_forced(model: PreTrainedModel, ids, length: int, states, cache) -> torch.Tensor:
    """Log-probs ``[n, C, V]`` (fp32) of tokens ``L .. L + C - 1`` of ``ids [n, L + C]``: the
    prompt's prefill ``states`` replayed into ``cache`` (as the model's own prefill would fill
    it), then the continuation fed one token at a time."""
    return blockwise(model, ids, length, states, cache, 1)


def blockwise(model: PreTrainedModel, ids, length: int, states, cache, block: int) -> torch.Tensor:
    """The tuning proxy: log-probs ``[n, C, V]`` of the continuation fed ``block`` tokens at a
    time after the replayed prefill (``block`` 1 is :func:`teacher_forced`; a block of at most
    a few tokens changes what is quantized when by at most that many tokens)."""
    replay_prefill(cache, states)
    steps = [states.logits.float().log_softmax(-1)[:, None]]
    with torch.no_grad():
        for t in range(length, ids.shape[1] - 1, block):
            chunk = ids[:, t : min(t + block, ids.shape[1] - 1)]
            out = model(input_ids=chunk, cache=cache, use_cache=True)
            steps.append(out.logits.float().log_softmax(-1))
    return torch.cat(steps, 1)


def kl_fp_q(ref: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """KL(fp || quantized) per step ``[n, C]`` from log-probs ``[n, C, V]``."""
    return (ref.exp() * (ref - logp)).sum(-1)


def nll(logp: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood ``[n, C]`` of ``targets [n, C]``."""
    return -logp.gather(-1, targets[..., None]).squeeze(-1)


def fp16_bytes(model: PreTrainedModel, n: int, tokens: int) -> int:
    """Bytes of fp16 keys + values for ``n`` rows of ``tokens`` tokens over all layers."""
    c = model.config
    d = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return 2 * c.num_hidden_layers * n * c.num_key_value_heads * tokens * d * 2


def tensor_bytes(t: object) -> int:
    """Bytes of a tensor, following tensor subclasses (quanto's) to their inner tensors."""
    if not isinstance(t, torch.Tensor):
        return 0
    if hasattr(t, "__tensor_flatten__") and type(t) is not torch.Tensor:
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, name)) for name in names)
    return t.numel() * t.element_size()


def cache_bytes(cache) -> int:
    """What a cache holds: burnish caches count themselves; transformers' QuantizedCache
    layers hold quantized tensors plus an fp residual."""
    if hasattr(cache, "nbytes"):
        return cache.nbytes()["total"]
    names = ("keys", "values", "_quantized_keys", "_quantized_values")
    return sum(tensor_bytes(getattr(layer, a, None)) for layer in cache.layers for a in names)


# ---- methods -------------------------------------------------------------------------------
def burnish_factories(model, bits: int, squat: dict, squat_pre: dict) -> dict[str, Callable]:
    """``{label: () -> fresh cache}`` for the burnish caches at ``bits``."""
    common = {"bits": bits, "group_size": G, "residual_length": R}
    return {
        f"kivi{bits}": lambda: KIVICache(model, **common),
        f"squat{bits}": lambda: SQuatCache(model, **common, **squat),
        f"squat_pre{bits}": lambda: SQuatPreCache(model, **common, **squat_pre),
    }


def quanto_factories(model, bits: int) -> dict[str, Callable]:
    from transformers import QuantizedCache

    return {
        f"quanto{bits}": lambda: QuantizedCache(
            "quanto", model.config, nbits=bits, q_group_size=G, residual_length=R
        )
    }


def quanto_available() -> bool:
    try:
        import optimum.quanto  # noqa: F401
    except ImportError:
        return False
    return True


def measure(model, prompts: Recorded, makers: dict[str, Callable]) -> dict[str, dict]:
    """Held-out protocol for each cache in ``makers`` (plus the fp reference ``fp``):
    ``{label: {kl, ppl, ppl_fp, bytes_ratio, seconds, per_length}}``; ``seconds``: filling
    the cache from the prefill plus the decode steps (the prefill itself is shared)."""
    acc: dict[str, dict] = {}
    for length, ids, states in prompts:
        start = time.perf_counter()
        ref = teacher_forced(model, ids, length, states, DynamicCache())
        fp_s = time.perf_counter() - start
        targets = ids[:, length:]
        n, t = ids.shape
        ref_nll = nll(ref, targets)
        for label, make in {"fp": None, **makers}.items():
            if label == "fp":
                logp, secs, held = ref, fp_s, None
            else:
                cache = make()
                start = time.perf_counter()
                logp = teacher_forced(model, ids, length, states, cache)
                secs, held = time.perf_counter() - start, cache_bytes(cache)
                getattr(cache, "restore_attention", lambda: None)()
            kl = kl_fp_q(ref, logp)
            row = {
                "kl": float(kl.mean()),
                "ppl": math.exp(float(nll(logp, targets).mean())),
                "ppl_fp": math.exp(float(ref_nll.mean())),
                "bytes_ratio": None if held is None else held / fp16_bytes(model, n, t - 1),
                "seconds": secs,
            }
            entry = acc.setdefault(label, {"kl": [], "nll": [], "nll_fp": [], "seconds": 0.0})
            entry["kl"].append(kl.flatten())
            entry["nll"].append(nll(logp, targets).flatten())
            entry["nll_fp"].append(ref_nll.flatten())
            entry["seconds"] += secs
            entry.setdefault("per_length", {})[str(length)] = row
            print(
                f"  L={length:5d} {label:12s} KL={row['kl']:.4f} ppl={row['ppl']:.3f} "
                f"(fp {row['ppl_fp']:.3f}) bytes={row['bytes_ratio']} {secs:.1f}s",
                flush=True,
            )
    return {label: _summary(e) for label, e in acc.items()}


def _summary(entry: dict) -> dict:
    per = entry["per_length"]
    longest = per[max(per, key=int)]
    return {
        "kl": float(torch.cat(entry["kl"]).mean()),
        "ppl": math.exp(float(torch.cat(entry["nll"]).mean())),
        "ppl_fp": math.exp(float(torch.cat(entry["nll_fp"]).mean())),
        "bytes_ratio_longest": longest["bytes_ratio"],
        "seconds": entry["seconds"],
        "per_length": per,
    }


# ---- query spectrum ------------------------------------------------------------------------
def _energy_shares(query: torch.Tensor, kv_heads: int) -> torch.Tensor:
    """Share of energy in the top-k singular directions, ``[B, H_kv, len(TOP_K)]``, of each
    KV head's stacked queries (``query [B, n_heads, T, d]``; GQA groups are consecutive)."""
    b, n_heads, t, d = query.shape
    q = query.float().reshape(b, kv_heads, (n_heads // kv_heads) * t, d)
    s2 = torch.linalg.svdvals(q).square()  # [B, H, d]
    share = s2.cumsum(-1) / s2.sum(-1, keepdim=True)
    return share[..., [k - 1 for k in TOP_K]]


def spectrum(model, prompts: Recorded) -> list[dict]:
    """Per layer and KV head: mean energy share in the top-k query directions over the
    calibration prompts, post-RoPE (as the attention sees them) and pre-RoPE (un-rotated
    with the model's own rotary module)."""
    rope = RopeFrame.from_model(model)
    h = model.config.num_key_value_heads
    rows = []
    for layer in range(model.config.num_hidden_layers):
        post, pre = [], []
        for _, _, st in prompts:
            q = st.queries[layer]  # [n, heads, L, d]
            cos, sin = rope.cos_sin(st.positions, layer)  # [n, L, d]
            post.append(_energy_shares(q, h))
            pre.append(_energy_shares(unrotate(q.float(), cos[:, None], sin[:, None]), h))
        post_m, pre_m = torch.cat(post).mean(0), torch.cat(pre).mean(0)  # [H, k]
        for j in range(h):
            row = {"layer": layer, "kv_head": j}
            row.update({f"post_top{k}": float(post_m[j, i]) for i, k in enumerate(TOP_K)})
            row.update({f"pre_top{k}": float(pre_m[j, i]) for i, k in enumerate(TOP_K)})
            rows.append(row)
    return rows


# ---- tuning --------------------------------------------------------------------------------
def proxy_kl(model, prompts: Recorded, make: Callable, refs: list, block: int) -> float:
    """Mean blockwise KL over the calibration prompts (``refs``: the fp log-probs)."""
    kls = []
    for (length, ids, states), ref in zip(prompts, refs, strict=True):
        with make() as cache:
            logp = blockwise(model, ids, length, states, cache, block)
            kls.append(kl_fp_q(ref, logp).flatten())
    return float(torch.cat(kls).mean())


def tune(model, prompts: Recorded, lams: list, ranks, blocks, step: int) -> dict:
    """Grid over ``lams`` (``(lam_scale, lam)`` pairs) x ranks at block 4, then block sizes
    at the best; SQuat and SQuat-pre at 2 bits; KIVI's KL alongside. Returns
    ``{grid, kivi2_kl, best}``."""
    refs = [blockwise(model, ids, n, st, DynamicCache(), step) for n, ids, st in prompts]
    common = {"bits": 2, "group_size": G, "residual_length": R}
    kivi = proxy_kl(model, prompts, lambda: KIVICache(model, **common), refs, step)
    print(f"  kivi2 KL {kivi:.4f}", flush=True)
    grid, best = [], {}
    for name, cls in (("squat", SQuatCache), ("squat_pre", SQuatPreCache)):

        def run(opts: dict, name=name, cls=cls) -> float:
            start = time.perf_counter()
            kl = proxy_kl(model, prompts, lambda: cls(model, **common, **opts), refs, step)
            secs = time.perf_counter() - start
            grid.append(
                {"method": name, **opts, "kl": kl, "kl_vs_kivi": kl / kivi, "seconds": secs}
            )
            print(f"  {name:9s} {opts} KL {kl:.4f} ({kl / kivi:.3f}x KIVI)", flush=True)
            return kl

        scores = {}
        for scale, lam in lams:
            for r in ranks:
                opts = {"lam_scale": scale, "lam": lam, "rank": r, "block_size": 4}
                scores[scale, lam, r] = run(opts)
        scale, lam, r = min(scores, key=scores.get)
        by_block = {4: scores[scale, lam, r]}
        for bs in blocks:
            by_block[bs] = run({"lam_scale": scale, "lam": lam, "rank": r, "block_size": bs})
        bs = min(by_block, key=by_block.get)
        best[name] = {"lam_scale": scale, "lam": lam, "rank": r, "block_size": bs}
    return {"grid": grid, "kivi2_kl": kivi, "best": best}


# ---- quanto as a peer ----------------------------------------------------------------------
def quanto_rows(model, prompts: Recorded, args) -> dict:
    """quanto rows in this process, in a peer interpreter, or a skipped note."""
    if quanto_available():
        makers = {}
        for bits in args.bits:
            makers.update(quanto_factories(model, bits))
        rows = measure(model, prompts, makers)
        rows.pop("fp")
        return rows
    if not args.quanto_python:
        return {"skipped": "backend not installed (optimum-quanto); pass --quanto-python"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "quanto.json"
        cmd = [args.quanto_python, __file__, "--peer-quanto", str(out), *protocol_args(args)]
        cmd += ["--model", str(resolve_model(args.model))]  # the peer may lack the package
        print("  peer:", " ".join(cmd), flush=True)
        done = subprocess.run(cmd, check=False)
        if done.returncode or not out.is_file():
            return {"skipped": f"peer interpreter failed (exit {done.returncode})"}
        return json.loads(out.read_text())


def protocol_args(args) -> list[str]:
    return [
        "--lengths", ",".join(map(str, args.lengths)),
        "--per-length", str(args.per_length),
        "--continuation", str(args.continuation),
        "--bits", ",".join(map(str, args.bits)),
    ]  # fmt: skip


# ---- plot ----------------------------------------------------------------------------------
def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.2))
    methods = [m for m in ("quanto", "kivi", "squat", "squat_pre")]
    bits = doc["settings"]["bits"]
    width = 0.8 / len(bits)
    for i, b in enumerate(bits):
        vals = [doc["heldout"].get(f"{m}{b}", {}).get("kl", float("nan")) for m in methods]
        ax1.bar([j + i * width for j in range(len(methods))], vals, width, label=f"{b}-bit")
    ax1.set_xticks([j + 0.4 - width / 2 for j in range(len(methods))], methods)
    ax1.set_yscale("log")
    ax1.set_ylabel("mean KL(fp || quantized)")
    ax1.set_title(f"held-out KL, G=R={G}")
    ax1.legend()
    rows = doc["spectrum"]
    layers = sorted({r["layer"] for r in rows})
    for k, style in ((1, ":"), (4, "--"), (8, "-")):
        for kind, color in (("post", "C0"), ("pre", "C3")):
            vals = [
                sum(r[f"{kind}_top{k}"] for r in rows if r["layer"] == li)
                / sum(1 for r in rows if r["layer"] == li)
                for li in layers
            ]
            ax2.plot(layers, vals, style, color=color, label=f"{kind}-RoPE top-{k}")
    ax2.set_xlabel("layer")
    ax2.set_ylabel("query energy share (mean over KV heads)")
    ax2.set_title("query spectrum (calibration)")
    ax2.legend(fontsize=7)
    for name, color in (("squat", "C0"), ("squat_pre", "C3")):
        g = [
            r
            for r in doc["tuning"]["grid"]
            if r["method"] == name and r["block_size"] == 4 and r["lam_scale"] == "moment"
        ]
        for rank, style in zip(RANKS, (":", "--", "-", "-.", (0, (1, 3))), strict=False):
            pts = sorted((r["lam"], r["kl_vs_kivi"]) for r in g if r["rank"] == rank)
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax3.plot(xs, ys, linestyle=style, marker="o", color=color, label=f"{name} r={rank}")
    ax3.axhline(1.0, color="k", lw=0.5)
    ax3.set_xscale("log")
    ax3.set_xlabel("lambda")
    ax3.set_ylabel("calibration KL / KIVI's (2-bit)")
    ax3.set_title("tuning grid (calibration, block 4, lam_scale moment)")
    ax3.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---- main ----------------------------------------------------------------------------------
def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=MODEL, help="model name or directory (default %(default)s)")
    p.add_argument("--lengths", type=_ints, default=[512, 1024, 2048], help="prompt lengths")
    p.add_argument("--per-length", type=int, default=4, help="held-out prompts per length")
    p.add_argument("--continuation", type=int, default=64, help="teacher-forced tokens")
    p.add_argument("--bits", type=_ints, default=[2, 4])
    p.add_argument(
        "--tune-lengths",
        type=_ints,
        default=[512, 1024, 2048],
        help="calibration prompt lengths (tuning grid and spectrum)",
    )
    p.add_argument("--tune-per-length", type=int, default=2)
    p.add_argument("--lams", type=_floats, default=list(LAMS), help="lam grid, lam_scale moment")
    p.add_argument(
        "--residual-lams",
        type=_floats,
        default=list(RESIDUAL_LAMS),
        help="lam grid for lam_scale residual (SQuatConfig.lam_scale); empty to skip",
    )
    p.add_argument("--ranks", type=_ints, default=list(RANKS))
    p.add_argument(
        "--blocks",
        type=_ints,
        default=list(BLOCKS),
        help="block sizes tried at the best (lam, rank), besides 4",
    )
    p.add_argument(
        "--tune-step", type=int, default=8, help="continuation tokens per forward in the grid"
    )
    p.add_argument(
        "--quanto-python",
        default=None,
        help="a Python with optimum-quanto and burnish, for the QuantizedCache rows",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default benchmarks/results; with --quick a temp folder)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: one 128-token prompt, 8 tokens, a 2-point grid",
    )
    p.add_argument("--peer-quanto", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)  # fmt: skip
    if args.quick:
        args.lengths, args.per_length, args.continuation = [128], 1, 8
        args.tune_lengths, args.tune_per_length = [128], 1
        args.lams, args.residual_lams, args.ranks, args.blocks = [0.1], [1.0], [4, 8], [8]
        args.out = args.out or Path(tempfile.mkdtemp(prefix="kvcache_real_"))
    args.out = args.out or Path(__file__).parent / "results"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, tok = load_model(resolve_model(args.model))
    model.eval()
    heldout = record(
        model, make_prompts(tok, "test", args.lengths, args.per_length, args.continuation)
    )
    if args.peer_quanto is not None:  # the peer: quanto rows only
        atomic_write_text(args.peer_quanto, json.dumps(quanto_rows(model, heldout, args)))
        return
    calib = record(
        model,
        make_prompts(tok, "train", args.tune_lengths, args.tune_per_length, args.continuation),
    )
    print("query spectrum (calibration):", flush=True)
    spec = spectrum(model, calib)
    print("tuning (calibration, blockwise continuation, 2-bit):", flush=True)
    lams = [("moment", x) for x in args.lams] + [("residual", x) for x in args.residual_lams]
    tuning = tune(model, calib, lams, args.ranks, args.blocks, args.tune_step)
    del calib
    best = tuning["best"]
    print(f"  best: {best}\nheld-out ({args.lengths}, {args.per_length} prompts each):")
    makers = {}
    for bits in args.bits:
        makers.update(burnish_factories(model, bits, best["squat"], best["squat_pre"]))
    rows = measure(model, heldout, makers)
    print("quanto (transformers QuantizedCache):", flush=True)
    quanto = quanto_rows(model, heldout, args)
    if "skipped" in quanto:
        rows["quanto"] = quanto
    else:
        rows.update(quanto)
    doc = {
        "settings": {
            "model": args.model, "G": G, "R": R, "bits": args.bits, "lengths": args.lengths,
            "per_length": args.per_length, "continuation": args.continuation,
            "tune_lengths": args.tune_lengths, "tune_per_length": args.tune_per_length,
            "tune_step": args.tune_step,
            "heldout_split": "test", "calibration_split": "train", "corpus": "pydoc",
            "threads": torch.get_num_threads(), "quick": args.quick,
        },
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "python": sys.version.split()[0], "torch": torch.__version__,
                    "cpus": os.cpu_count()},
        "heldout": rows,
        "targets": targets(rows, args.bits),
        "spectrum": spec,
        "tuning": tuning,
        "chosen": best,
        "wall_seconds": time.perf_counter() - start,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "kvcache_real.json"
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    plot(doc, args.out / "kvcache_real.png")
    print(json.dumps(doc["targets"], indent=2))
    print(f"wrote {path} and kvcache_real.png")


def targets(rows: dict, bits: list[int]) -> dict:
    """Issue #13's targets at 2 bits: SQuat KL <= 0.6x KIVI's; SQuat-pre below SQuat."""
    if 2 not in bits:
        return {}
    kivi, squat, pre = (rows[f"{m}2"]["kl"] for m in ("kivi", "squat", "squat_pre"))
    return {
        "squat2_kl_vs_kivi2": squat / kivi,
        "squat2_at_most_0.6x_kivi2": squat <= 0.6 * kivi,
        "squat_pre2_kl_vs_kivi2": pre / kivi,
        "squat_pre2_below_squat2": pre < squat,
    }


if __name__ == "__main__":
    main()
