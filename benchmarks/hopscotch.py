"""Hopscotch: quality after skipping attention blocks, for every selection method, and what
skipping saves (decode time per token, KV bytes).

Methods (``burnish.compress.select``): Hopscotch ``exact`` (the paper's greedy search),
``cheap`` (forward-only candidate scores, a short fit after each choice), ``shortgpt`` (whole
layers of lowest block influence), ``attn-drop`` (attention blocks of highest input/output
cosine), ``random``; each with the final scale fit ("+scaling") and with every scale left at 1
(the paper's ablation). Greedy and one-shot selections are nested, so one search to the
largest k gives every smaller k (the scales as they were after that round, then the final
fit).

- zoo: fine-tunes (4 layers) on their own task, skipping 1 and 2 of 4 attention blocks;
  quality = task accuracy on held-out problems.
- SmolLM2-135M-Instruct (30 layers), skipping 2, 4, 8: calibration = its own greedy answers
  to instruction prompts about pydoc topics plus raw pydoc text (train split); quality =
  held-out pydoc perplexity (test split) and agreement with the full model's greedy answers
  to held-out prompts (the share of answer tokens where the skipped model, teacher-forced on
  the full model's answer, predicts the same next token). The exact search runs to
  ``--exact-max-k`` only (its cost: candidates x steps forward-backward passes per round on
  this CPU).
- speed: SmolLM2 with k of the cheap search's blocks skipped, batch 1, a real-text context of
  256 / 1024 / 2048 tokens prefilled into transformers' DynamicCache, then ``--decode``
  greedy steps timed (median per token; every k measured ``--speed-reps`` times, interleaved,
  the fastest kept); KV bytes are what the cache holds. Ratios are
  against k = 0 in the same run (all of SmolLM2's attention blocks have one shape, so the
  cost depends on k, not on which blocks).

    python benchmarks/hopscotch.py [--quick]
    python benchmarks/hopscotch.py --speed-only      # re-measure the speed part of the JSON
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch
from transformers import DynamicCache

from burnish.compress.data import Calibration, build_calibration, pydoc_prompts
from burnish.compress.scales import fit_scales, mean_loss, set_scales
from burnish.compress.select import SelectionSettings, SelectionState, select
from burnish.data.corpus import corpus_blocks
from burnish.data.tokenize import tokenize_conversation
from burnish.eval import evaluate, generate_chat, perplexity
from burnish.io import atomic_write_text
from burnish.models import load_model
from burnish.models.skipping import scaled_layers, wrap_scaled
from burnish.models.zoo import resolve_model

warnings.filterwarnings("ignore")
METHODS = ("exact", "cheap", "shortgpt", "attn-drop", "random")
OUT = Path(__file__).parent / "results" / "hopscotch.json"


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def configure(model, chosen: list[int], whole: bool, scales: list[list[float]] | None) -> None:
    """Skip ``chosen`` (whole layers for ShortGPT) with ``scales`` (None: all 1)."""
    for i, layer in enumerate(scaled_layers(model)):
        layer.skip_attention = i in chosen
        layer.skip_mlp = whole and i in chosen
    n = len(scaled_layers(model))
    set_scales(model, torch.tensor(scales) if scales else torch.ones(n, 4))


def nested_search(model, calib: Calibration, settings: SelectionSettings) -> dict[int, dict]:
    """One search to ``settings.k``; per k the blocks and scales after round k, and seconds."""
    snaps: dict[int, dict] = {}

    def snap(state: SelectionState) -> None:
        snaps[len(state.chosen)] = {
            "chosen": list(state.chosen),
            "scales": [list(r) for r in state.scales],
            "seconds": state.seconds,
        }

    configure(model, [], False, None)
    select(model, calib, settings, save=snap)
    return snaps


def sweep(
    model, calib, ks, settings_for, final_steps, final_lr, score, max_k_for=None
) -> list[dict]:
    """Every method at every k, with and without the final scale fit; ``score(model)`` is the
    quality measure (a dict)."""
    rows = []
    for method in METHODS:
        top = max(k for k in ks if max_k_for is None or k <= max_k_for.get(method, k))
        snaps = nested_search(model, calib, settings_for(method, top))
        for k in ks:
            if k not in snaps:
                continue
            for scaling in (True, False):
                snap = snaps[k]
                configure(
                    model, snap["chosen"], method == "shortgpt", snap["scales"] if scaling else None
                )
                t0 = time.perf_counter()
                if scaling:
                    fit_scales(model, calib, final_steps, final_lr)
                row = {
                    "method": method,
                    "k": k,
                    "scaling": scaling,
                    "blocks": snap["chosen"],
                    "selection_seconds": snap["seconds"],
                    "final_fit_seconds": round(time.perf_counter() - t0, 2),
                    "calibration_loss": mean_loss(model, calib, 4),
                    **score(model),
                }
                rows.append(row)
                print(json.dumps({k2: v for k2, v in row.items() if k2 != "blocks"}), flush=True)
    configure(model, [], False, None)
    return rows


def zoo_part(args) -> dict:
    out = {}
    for name, task in (
        ("ft-addition", "addition"),
        ("ft-reversal", "reversal"),
        ("ft-sorting", "sorting"),
    ):
        model, tok = load_model(resolve_model(name))
        calib = build_calibration(
            model, tok, "tasks", [task], args.zoo_samples, row_tokens=512, batch_rows=4
        )
        full = evaluate(model, tok, [task], n_problems=args.zoo_eval)[task].accuracy
        print(name, "full accuracy", full, flush=True)
        wrap_scaled(model)

        def score(m, tok=tok, task=task) -> dict:
            return {"accuracy": evaluate(m, tok, [task], n_problems=args.zoo_eval)[task].accuracy}

        def settings_for(method: str, k: int) -> SelectionSettings:
            return SelectionSettings(method=method, k=k, steps=20, fit_steps=20)

        rows = sweep(model, calib, args.zoo_ks, settings_for, 10 * len(calib.batches), 3e-3, score)
        for r in rows:
            r["relative_drop"] = (full - r["accuracy"]) / full if full else None
        out[name] = {
            "task": task,
            "full_accuracy": full,
            "calibration_batches": len(calib.batches),
            "rows": rows,
        }
    return out


def _agreement_set(model, tok, n: int, max_new: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Held-out prompts with the full model's greedy answers: (ids [T], answer mask [T])."""
    prompts = pydoc_prompts(n, seed=1, split="test")
    answers = [a[0] for a in generate_chat(model, tok, prompts, max_new)]
    out = []
    for p, a in zip(prompts, answers, strict=True):
        if a.strip():
            ids, labels = tokenize_conversation(
                [{"role": "user", "content": p}, {"role": "assistant", "content": a.strip()}], tok
            )
            out.append((torch.tensor(ids), torch.tensor(labels) >= 0))
    return out


@torch.no_grad()
def agreement(model, pairs) -> float:
    same = total = 0
    for ids, mask in pairs:
        pred = model(ids[None]).logits[0, :-1].argmax(-1)  # [T-1]
        keep = mask[1:]
        same += int((pred[keep] == ids[1:][keep]).sum())
        total += int(keep.sum())
    return same / max(1, total)


def real_part(args, model, tok) -> dict:
    calib = build_calibration(
        model,
        tok,
        "pydoc",
        samples=args.real_samples,
        corpus_blocks_n=args.real_blocks,
        block_size=256,
        row_tokens=256,
        batch_rows=2,
        progress=False,
    )
    held = corpus_blocks(tok, "test", 256, args.ppl_blocks)
    pairs = _agreement_set(model, tok, args.agree_prompts, 48)
    full_ppl = perplexity(model, held, tok.pad_token_id or 0).perplexity
    wrap_scaled(model)
    full_agree = agreement(model, pairs)

    def score(m) -> dict:
        ppl = perplexity(m, held, tok.pad_token_id or 0).perplexity
        return {"ppl": ppl, "ppl_increase": ppl / full_ppl - 1, "agreement": agreement(m, pairs)}

    def settings_for(method: str, k: int) -> SelectionSettings:
        return SelectionSettings(
            method=method, k=k, steps=args.exact_steps, score_batches=1, fit_steps=4
        )

    rows = sweep(
        model,
        calib,
        args.real_ks,
        settings_for,
        args.final_steps,
        3e-3,
        score,
        max_k_for={"exact": args.exact_max_k},
    )
    return {
        "full_ppl": full_ppl,
        "full_agreement": full_agree,
        "calibration": {
            "sequences": calib.sequences,
            "tokens": calib.tokens,
            "batches": len(calib.batches),
        },
        "held_out_blocks": len(held),
        "agreement_answers": len(pairs),
        "rows": rows,
    }


@torch.no_grad()
def decode_timing(model, context: torch.Tensor, steps: int) -> tuple[float, int]:
    """Median seconds per decoded token after prefilling ``context`` [1, T]; KV bytes held."""
    cache = DynamicCache()
    out = model(context, cache=cache, use_cache=True)
    nxt = out.logits[:, -1:].argmax(-1)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        out = model(nxt, cache=cache, use_cache=True)
        times.append(time.perf_counter() - t0)
        nxt = out.logits[:, -1:].argmax(-1)
    kv = sum(
        x.keys.nbytes + x.values.nbytes
        for x in cache.layers
        if getattr(x, "keys", None) is not None
    )
    return statistics.median(times), kv


def speed_part(args, model, tok, blocks: list[int]) -> dict:
    """Per context length, k = 0 and each k in turn, ``--speed-reps`` times interleaved
    (so drift hits every k alike); the fastest median of each is kept."""
    text = [t for b in corpus_blocks(tok, "test", 4096, None) for t in b]
    if len(text) < max(args.lengths):
        raise SystemExit(f"the held-out corpus has only {len(text)} tokens")
    ks = [0, *args.real_ks]
    rows = []
    for length in args.lengths:
        ctx = torch.tensor([text[:length]])
        best: dict[int, tuple[float, int]] = {}
        for _ in range(args.speed_reps):
            for k in ks:
                configure(model, blocks[:k], False, None)
                decode_timing(model, ctx[:, :64], 2)  # warm-up
                sec, kv = decode_timing(model, ctx, args.decode)
                best[k] = (min(sec, best.get(k, (math.inf, 0))[0]), kv)
        for k in ks:
            sec, kv = best[k]
            rows.append(
                {
                    "context": length,
                    "k": k,
                    "ms_per_token": sec * 1e3,
                    "kv_bytes": kv,
                    "time_ratio": sec / best[0][0],
                    "kv_ratio": kv / best[0][1],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    configure(model, [], False, None)
    return {"blocks": blocks[: max(args.real_ks)], "reps": args.speed_reps, "rows": rows}


def speed_only(args) -> None:
    """Re-measure the speed part of an existing results file (with its cheap blocks)."""
    from burnish.models.gguf import import_gguf

    doc = json.loads(args.output.read_text())
    model, tok = load_model(import_gguf("smollm2-135m-instruct"))
    wrap_scaled(model)
    rows = doc["smollm2"]["rows"]
    cheap = next(
        r["blocks"] for r in rows if r["method"] == "cheap" and r["k"] == max(args.real_ks)
    )
    doc["speed"] = speed_part(args, model, tok, cheap)
    atomic_write_text(args.output, json.dumps(doc, indent=2) + "\n")
    if doc.get("zoo"):
        plot(doc, args.output.with_suffix(".png"))
    print(f"rewrote the speed part of {args.output}")


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    real = doc["smollm2"]["rows"]
    for method in METHODS:
        for scaling, style in ((True, "-o"), (False, ":x")):
            pts = sorted(
                (r["k"], 100 * r["ppl_increase"])
                for r in real
                if r["method"] == method and r["scaling"] == scaling
            )
            if pts:
                axes[0].plot(
                    *zip(*pts, strict=True),
                    style,
                    label=f"{method}{' +scaling' if scaling else ''}",
                )
    axes[0].set(
        xlabel="attention blocks skipped (of 30)",
        ylabel="held-out pydoc perplexity increase (%)",
        title="SmolLM2-135M-Instruct",
        yscale="log",
    )
    axes[0].legend(fontsize=7)
    zoo = doc["zoo"]
    names = list(zoo)
    for j, method in enumerate(METHODS):
        for k, hatch in ((1, ""), (2, "//")):
            vals = [
                next(
                    (
                        r["accuracy"]
                        for r in zoo[n]["rows"]
                        if r["method"] == method and r["k"] == k and r["scaling"]
                    ),
                    math.nan,
                )
                for n in names
            ]
            xs = [i + 0.16 * j - 0.32 + (0.07 if k == 2 else 0) for i in range(len(names))]
            axes[1].bar(
                xs,
                vals,
                width=0.07,
                color=f"C{j}",
                hatch=hatch,
                label=f"{method} k={k}" if True else None,
            )
    axes[1].plot(
        range(len(names)),
        [zoo[n]["full_accuracy"] for n in names],
        "k_",
        markersize=30,
        label="full",
    )
    axes[1].set_xticks(range(len(names)), names)
    axes[1].set(
        ylabel="task accuracy (+scaling)",
        title="zoo fine-tunes, 4 layers: skip 1 (plain) / 2 (hatched)",
    )
    axes[1].legend(fontsize=6, ncol=2)
    for length in sorted({r["context"] for r in doc["speed"]["rows"]}):
        pts = [(r["k"], r["time_ratio"]) for r in doc["speed"]["rows"] if r["context"] == length]
        axes[2].plot(*zip(*pts, strict=True), "-o", label=f"time/token, {length} ctx")
    kv = [
        (r["k"], r["kv_ratio"])
        for r in doc["speed"]["rows"]
        if r["context"] == doc["speed"]["rows"][0]["context"]
    ]
    axes[2].plot(*zip(*kv, strict=True), "k--", label="KV bytes")
    axes[2].set(
        xlabel="attention blocks skipped",
        ylabel="ratio to the full model",
        title="SmolLM2 decode, batch 1, CPU",
    )
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--zoo-ks", type=_ints, default=[1, 2])
    p.add_argument("--zoo-samples", type=int, default=256)
    p.add_argument("--zoo-eval", type=int, default=200, help="held-out problems per zoo task")
    p.add_argument("--real-ks", type=_ints, default=[2, 4, 8])
    p.add_argument("--exact-max-k", type=int, default=4)
    p.add_argument("--exact-steps", type=int, default=2, help="scale steps per candidate")
    p.add_argument("--final-steps", type=int, default=8)
    p.add_argument("--real-samples", type=int, default=48)
    p.add_argument("--real-blocks", type=int, default=24)
    p.add_argument("--ppl-blocks", type=int, default=16)
    p.add_argument("--agree-prompts", type=int, default=16)
    p.add_argument("--lengths", type=_ints, default=[256, 1024, 2048])
    p.add_argument("--decode", type=int, default=32, help="decode steps timed per run")
    p.add_argument("--speed-reps", type=int, default=3, help="interleaved repeats per k")
    p.add_argument("--speed-only", action="store_true", help="re-measure speed in --output")
    p.add_argument("--skip-zoo", action="store_true")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--output", type=Path, default=OUT)
    args = p.parse_args(argv)
    if args.quick:
        args.zoo_samples, args.zoo_eval, args.real_ks, args.exact_max_k = 32, 16, [1, 2], 1
        args.real_samples, args.real_blocks, args.ppl_blocks, args.agree_prompts = 4, 2, 2, 2
        args.lengths, args.decode, args.final_steps, args.exact_steps = [64], 2, 1, 1
        args.speed_reps = 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.speed_only:
        return speed_only(args)
    t0 = time.perf_counter()
    from burnish.models.gguf import import_gguf

    model, tok = load_model(import_gguf("smollm2-135m-instruct"))
    doc: dict = {
        "machine": f"{platform.machine()}, torch {torch.__version__}, {args.threads} threads",
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    real = real_part(args, model, tok)
    doc["smollm2"] = real
    cheap = next(
        r["blocks"] for r in real["rows"] if r["method"] == "cheap" and r["k"] == max(args.real_ks)
    )
    doc["speed"] = speed_part(args, model, tok, cheap)
    doc["zoo"] = {} if args.skip_zoo else zoo_part(args)
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output, json.dumps(doc, indent=2) + "\n")
    if doc["zoo"]:
        plot(doc, args.output.with_suffix(".png"))
    print(f"wrote {args.output} in {doc['seconds']} s")


if __name__ == "__main__":
    main()
