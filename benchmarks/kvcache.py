"""Quantized KV caches: quality, attention error, exact memory and decode speed, in one run.

Compares the fp cache (DynamicCache), transformers' QuantizedCache (quanto backend, if
optimum-quanto is installed: the optional ``bench`` extra), KIVICache and SQuatCache at 2 and
4 bits, on the same prompts. CPU only, no fused kernels: speed numbers are honest ratios of
plain PyTorch code, not what a CUDA kernel would give.

    python benchmarks/kvcache.py [--n 64] [--out benchmarks/results] [--parts memory,speed]

The zoo's sequences are short (prompt + answer ~30-60 tokens), so the quality runs use
G = R = 8 so that quantization engages; memory is reported for G = R = 32 (the paper's).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch
from transformers import AttentionInterface, DynamicCache
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from burnish.eval import generate_chat
from burnish.io import atomic_write_text
from burnish.kvcache import (
    KIVICache,
    KIVIConfig,
    KIVILayer,
    SQuatCache,
    SQuatConfig,
    SQuatLayer,
    cache_defaults,
    quant,
)
from burnish.kvcache.squat import (
    block_ranges,
    query_subspace,
    squat_quantize_keys,
    subspace_weights,
)
from burnish.models import load_model
from burnish.models.zoo import resolve_model
from burnish.tasks import get_task

warnings.filterwarnings("ignore")
G_Q, R_Q = 8, 8  # quality settings (zoo sequences are short)
SQUAT = {k: cache_defaults("squat")[k] for k in ("rank", "lam", "block_size")}  # defaults
QUALITY = [  # (model, task, knobs)
    ("arith-policy", "arith_chain", {}),
    ("base", "reversal", {"min_len": 5, "max_len": 9}),
    ("base", "sorting", {"min_len": 5, "max_len": 8}),
    ("qwen2-mix", "sorting", {}),
]


def quanto_available() -> bool:
    try:
        import optimum.quanto  # noqa: F401
    except ImportError:
        return False
    return True


def cache_factories(model, bits: int, g: int, r: int) -> dict:
    """name -> () -> fresh cache (None = transformers' default fp DynamicCache)."""
    out = {
        f"kivi{bits}": lambda: KIVICache(model, bits=bits, group_size=g, residual_length=r),
        f"squat{bits}": lambda: SQuatCache(
            model, bits=bits, group_size=g, residual_length=r, **SQUAT
        ),
    }
    if quanto_available():
        from transformers import QuantizedCache

        out[f"quanto{bits}"] = lambda: QuantizedCache(
            "quanto", model.config, nbits=bits, q_group_size=32, residual_length=r
        )
    return out


def quality(n: int) -> list[dict]:
    rows = []
    for name, task_name, knobs in QUALITY:
        model, tok = load_model(resolve_model(name))
        task = get_task(task_name, **knobs)
        problems = task.generate(n, "test", seed=0)
        prompts = [p.prompt for p in problems]
        caches = {"fp": lambda: None}
        for bits in (2, 4):
            caches.update(cache_factories(model, bits, G_Q, R_Q))
        for label, make in caches.items():
            outs = []
            for i in range(0, n, 32):
                cache = make()
                extra = {} if cache is None else {"cache": cache}
                outs += generate_chat(model, tok, prompts[i : i + 32], task.max_new_tokens, **extra)
            acc = sum(task.score(p, o[0]) for p, o in zip(prompts, outs, strict=True)) / n
            rows.append({"model": name, "task": task_name, "cache": label, "accuracy": acc})
            print(f"  {name:13s} {task_name:12s} {label:8s} acc={acc:.3f}", flush=True)
    return rows


_CAPTURED: dict[int, tuple] = {}


def _capture(module, query, key, value, attention_mask, **kw):
    _CAPTURED[module.layer_idx] = (query.detach(), key.detach(), value.detach())
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kw)


def attention_error(prompt_len: int = 96, heldout: int = 32) -> list[dict]:
    """Relative error of attention outputs of held-out queries on quantized prompt K/V.

    Text: several arith_chain problems concatenated (zoo model ``arith-policy``). The query
    subspace comes from the first ``prompt_len`` tokens; the next ``heldout`` tokens' queries
    attend to the quantized first ``prompt_len`` keys/values.
    """
    model, tok = load_model(resolve_model("arith-policy"))
    AttentionInterface.register("bench_capture", _capture)
    AttentionMaskInterface.register("bench_capture", sdpa_mask)
    model.set_attn_implementation("bench_capture")
    text = "\n".join(
        p.prompt + "\n" + p.answer for p in get_task("arith_chain").generate(20, "test")
    )
    ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"][
        :, : prompt_len + heldout
    ]
    with torch.no_grad():
        model(input_ids=ids)
    model.set_attn_implementation("sdpa")
    rows = []
    for bits in (2, 4):
        errs = {"kivi": [], "squat": []}
        for q, k, v in _CAPTURED.values():
            b, nh, _, d = q.shape
            h = k.shape[1]
            qp, qh = q[..., :prompt_len, :], q[..., prompt_len:, :]
            kp, vp = k[..., :prompt_len, :], v[..., :prompt_len, :]
            ref = _attend(qh, kp, vp)
            chunks = kp.reshape(b, h, prompt_len // 32, 32, d)
            vq = quant.dequantize_per_token(quant.quantize_per_token(vp, bits, 32), torch.float32)
            kq = quant.quantize_per_channel(chunks, bits)
            kivi_k = _deq_chunks(kq, chunks.shape)
            groups = qp[0].reshape(h, (nh // h) * prompt_len, d)  # [H, g*T, d] per KV head
            q_hat = query_subspace(groups, SQUAT["rank"])[None, :, None]  # [1, H, 1, r, d]
            blocks = block_ranges(d, SQUAT["block_size"])
            weights = subspace_weights(q_hat, SQUAT["lam"], blocks)  # [1, H, 1, nb-1, r, r]
            _, squat_k = squat_quantize_keys(chunks, q_hat, weights, blocks, bits)
            for label, kk in (("kivi", kivi_k), ("squat", squat_k.reshape(kp.shape))):
                out = _attend(qh, kk, vq)
                errs[label].append(float((out - ref).norm() / ref.norm()))
        for label, e in errs.items():
            rows.append({"bits": bits, "cache": label, "rel_attn_error": sum(e) / len(e)})
            print(f"  attention error {label}{bits}: {sum(e) / len(e):.4f}", flush=True)
    return rows


def _deq_chunks(q: quant.Quantized, shape: torch.Size) -> torch.Tensor:
    codes = quant.unpack_codes(q.codes, q.bits, q.n).float()
    return (codes * q.scale.float().unsqueeze(-2) + q.zero.float().unsqueeze(-2)).reshape(
        shape[0], shape[1], -1, shape[-1]
    )


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    return torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1) @ v


def memory() -> list[dict]:
    """Exact bytes held (``nbytes()['total']``: codes, scales, zero points, fp16 residual and,
    for SQuat, Q_hat and its r x r weights) / fp16 cache bytes; one KV head, batch 1."""
    rows = []
    for d in (32, 128):
        for t in (128, 512, 2048, 8192):
            for bits in (2, 4):
                for label, layer in (
                    ("kivi", KIVILayer(KIVIConfig(bits=bits, group_size=32, residual_length=32))),
                    (
                        "squat",
                        SQuatLayer(SQuatConfig(bits=bits, group_size=32, residual_length=32)),
                    ),
                ):
                    x = torch.randn(1, 1, t, d, dtype=torch.float16)
                    layer.update(x, x)
                    layer.observe_prefill(torch.randn(1, 1, t, d, dtype=torch.float16), None)
                    ratio = layer.nbytes()["total"] / (2 * t * d * 2)
                    rows.append(
                        {
                            "cache": label,
                            "head_dim": d,
                            "tokens": t,
                            "bits": bits,
                            "ratio_vs_fp16": ratio,
                        }
                    )
    return rows


def speed(new_tokens: int = 64, prompt_len: int = 192, batch: int = 8) -> list[dict]:
    """Decode seconds per token (all rows) against the fp cache, G = R = 32."""
    model, _ = load_model(resolve_model("arith-policy"))
    ids = torch.randint(3, 100, (batch, prompt_len), generator=torch.Generator().manual_seed(0))
    makers = {"fp": lambda: DynamicCache()}
    for bits in (2, 4):
        makers.update(cache_factories(model, bits, 32, 32))
    rows = []
    for label, make in makers.items():
        times = []
        for n in (1, new_tokens + 1):  # decode time = (prefill + n) - (prefill + 1)
            start = time.perf_counter()
            with torch.no_grad():
                model.generate(
                    ids,
                    max_new_tokens=n,
                    min_new_tokens=n,
                    do_sample=False,
                    cache=make(),
                    pad_token_id=0,
                )
            times.append(time.perf_counter() - start)
        per = (times[1] - times[0]) / new_tokens
        rows.append({"cache": label, "decode_ms_per_token": per * 1e3})
    fp = rows[0]["decode_ms_per_token"]
    for r in rows:
        r["ratio_vs_fp"] = r["decode_ms_per_token"] / fp
        ms, ratio = r["decode_ms_per_token"], r["ratio_vs_fp"]
        print(f"  decode {r['cache']:8s} {ms:.2f} ms/token x{ratio:.2f}")
    return rows


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    runs = sorted({(r["model"], r["task"]) for r in doc["quality"]})
    labels = list(dict.fromkeys(r["cache"] for r in doc["quality"]))
    width = 0.8 / len(labels)
    for i, lab in enumerate(labels):
        vals = [
            next(
                r["accuracy"]
                for r in doc["quality"]
                if (r["model"], r["task"]) == run and r["cache"] == lab
            )
            for run in runs
        ]
        ax1.bar([j + i * width for j in range(len(runs))], vals, width, label=lab)
    ax1.set_xticks([j + 0.4 for j in range(len(runs))], [f"{m}\n{t}" for m, t in runs], fontsize=7)
    ax1.set_ylabel("accuracy")
    ax1.set_title(f"task accuracy (G=R={G_Q})")
    ax1.legend(fontsize=7)
    for cache in ("kivi", "squat"):
        for bits in (2, 4):
            pts = [
                r
                for r in doc["memory"]
                if r["bits"] == bits and r["head_dim"] == 128 and r["cache"] == cache
            ]
            ax2.plot(
                [r["tokens"] for r in pts],
                [r["ratio_vs_fp16"] for r in pts],
                "o-" if cache == "kivi" else "s--",
                label=f"{cache} {bits}-bit",
            )
    ax2.set_xscale("log")
    ax2.set_xlabel("tokens")
    ax2.set_ylabel("bytes / fp16 bytes")
    ax2.set_title("KIVI/SQuat cache size (G=R=32, d=128)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


PARTS = ("quality", "attention_error", "memory", "speed")


def run_part(part: str, n: int) -> list[dict]:
    """Run one part of the benchmark and print its numbers."""
    if part == "quality":
        print("quality:")
        return quality(n)
    if part == "attention_error":
        print("attention-output error (held-out queries, G=32):")
        return attention_error()
    if part == "memory":
        rows = memory()
        print("memory (bytes / fp16 bytes, G=R=32):")
        for r in rows:
            d, t, bits = r["head_dim"], r["tokens"], r["bits"]
            print(f"  {r['cache']:5s} d={d:3d} T={t:5d} {bits}-bit {r['ratio_vs_fp16']:.3f}")
        return rows
    print("speed (arith-policy, batch 8, prompt 192, 64 new tokens, G=R=32):")
    return speed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="problems per task")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated subset of {', '.join(PARTS)}; the others are kept from an "
        "existing kvcache.json",
    )
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := sorted(set(parts) - set(PARTS)):
        parser.error(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    torch.manual_seed(0)
    path = args.out / "kvcache.json"
    doc = json.loads(path.read_text()) if set(parts) < set(PARTS) and path.exists() else {}
    doc["settings"] = {"quality_G": G_Q, "quality_R": R_Q, "squat": SQUAT, "n": args.n}
    if "quality" in parts:
        doc["quanto"] = quanto_available()  # whether the quality rows include quanto
    for part in parts:
        doc.pop(f"{part}_note", None)  # a note on a part kept from an earlier run
        doc[part] = run_part(part, args.n)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    if all(p in doc for p in ("quality", "memory")):
        plot(doc, args.out / "kvcache.png")
    print(f"wrote {path} and kvcache.png")


if __name__ == "__main__":
    main()
