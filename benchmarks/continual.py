"""Continual learning on four zoo tasks: sequential SFT, sequential LoRA, OSFT (uniform and
adaptive) and multi-task training as the upper bound, with the same data, steps and evaluation.

    python benchmarks/continual.py                       # all methods (LoRA needs peft)
    python benchmarks/continual.py --methods sft,osft-uniform --steps 50

Every method starts from the zoo `base`, trains the tasks in order (the same generated data,
the same optimizer steps per task), and is evaluated on every task after every stage.
Writes benchmarks/results/continual.json and continual.png (one heatmap per method) and prints
the table of average accuracy and backward transfer (BWT). Stages resume if interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from burnish.data import prepare_dataset
from burnish.eval import evaluate
from burnish.io import write_jsonl
from burnish.models import load_model, save_model
from burnish.models.zoo import resolve_model
from burnish.tasks import get_task
from burnish.train.continual import ContinualResult, run_continual
from burnish.train.distributed import DistInfo
from burnish.train.osft import OSFTConfig
from burnish.train.sft import epoch_batches, rank_minibatches
from burnish.train.step import build_optimizer, train_step

OUT = Path(__file__).parent / "results"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_stage(rank: int, lr: float):
    """A StageTrainer: LoRA on the same targets, same batches and steps, merged after the task."""
    from peft import LoraConfig, get_peft_model

    def seq_lora(start: str, cfg: OSFTConfig) -> Path:
        model, tok = load_model(start)
        model = get_peft_model(
            model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=TARGETS, lora_dropout=0.0)
        )
        data = prepare_dataset(cfg.data, tok, cfg.max_seq_len, cfg.cache_dir)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = build_optimizer(params, lr, (cfg.beta1, cfg.beta2), cfg.weight_decay)
        for batch in epoch_batches(len(data), cfg.effective_batch_size, cfg.seed, 0)[
            : cfg.max_steps
        ]:
            mbs, total = rank_minibatches(
                batch,
                data,
                DistInfo(),
                cfg.max_seq_len,
                cfg.max_tokens_per_step,
                tok.pad_token_id,
                next(model.parameters()).dtype,
            )
            train_step(model, opt, mbs, total, cfg.grad_clip, DistInfo())
        out = Path(cfg.output_dir) / "final"
        save_model(model.merge_and_unload(), tok, out)
        return out

    return seq_lora


def multitask(tasks: list[str], args, options: dict, out: Path) -> ContinualResult:
    """Upper bound: one run on all tasks' data with the total number of steps."""
    from burnish.train.sft import run_sft

    rows = []
    for t in tasks:
        rows += [e.to_messages() for e in get_task(t).generate(args.samples, "train")]
    data = write_jsonl(out / "train.jsonl", rows)
    cfg = OSFTConfig(
        **{
            **options,
            "model": str(resolve_model("base")),
            "data": str(data),
            "output_dir": str(out / "run"),
            "max_steps": args.steps * len(tasks),
        }
    )
    m, tok = load_model(cfg.model)
    run_sft(cfg, progress=False, model=m, tokenizer=tok)
    accs = [r.accuracy for r in evaluate(m, tok, tasks, args.eval_n).values()]
    return ContinualResult(tasks, [accs], sum(accs) / len(accs), float("nan"), [], "multitask")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", default="sorting,reversal,addition,comparison")
    p.add_argument("--methods", default="sft,lora,osft-uniform,osft-adaptive,multitask")
    p.add_argument(
        "--steps",
        type=int,
        default=100,
        help="at most this many optimizer steps per task (one epoch of --samples may be fewer)",
    )
    p.add_argument("--samples", type=int, default=4000, help="training samples per task")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lora-lr", type=float, default=3e-3)
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--unfreeze", type=float, default=0.3, help="OSFT unfreeze_rank_ratio")
    p.add_argument(
        "--osft-train-all",
        action="store_true",
        help="OSFT: keep embeddings, norms and lm_head trainable (default: frozen, as for LoRA)",
    )
    p.add_argument("--projection", default="two_sided", choices=["block", "two_sided"])
    p.add_argument("--eval-n", type=int, default=64)
    p.add_argument("--work", type=Path, default=None, help="stage folder (default: temporary)")
    p.add_argument("--out", type=Path, default=OUT / "continual.json")
    args = p.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    work = args.work or Path(tempfile.mkdtemp(prefix="burnish-continual-"))
    common = dict(
        model="-",
        data="-",
        lr=args.lr,
        max_steps=args.steps,
        max_seq_len=96,
        effective_batch_size=args.batch,
        save_epoch_end=False,
        save_state=False,
        device="cpu",
        unfreeze_rank_ratio=args.unfreeze,
        freeze_untargeted=not args.osft_train_all,
        projection=args.projection,
    )
    results: dict[str, dict] = {}
    for method in args.methods.split(","):
        t0 = time.time()
        opts = {k: v for k, v in common.items() if k not in ("model", "data")}
        if method == "multitask":
            res = multitask(tasks, args, common, work / method)
        elif method == "lora":
            res = run_continual(
                "base",
                tasks,
                work / method,
                lora_stage(args.lora_rank, args.lora_lr),
                args.samples,
                args.eval_n,
                opts,
            )
        else:
            kind = "sft" if method == "sft" else "osft"
            if method.startswith("osft-"):
                opts["rank_mode"] = method.removeprefix("osft-")
            res = run_continual("base", tasks, work / method, kind, args.samples, args.eval_n, opts)
        results[method] = {
            "average_accuracy": res.average_accuracy,
            "bwt": res.backward_transfer,
            "matrix": res.matrix,
            "initial": res.initial,
            "seconds": round(time.time() - t0, 1),
        }
        print(
            f"{method:>14}: avg {res.average_accuracy:.3f}  BWT {res.backward_transfer:+.3f}  "
            f"({results[method]['seconds']} s)",
            flush=True,
        )
    config = {k: str(v) for k, v in vars(args).items()}
    # What ran, not what was asked: one epoch of --samples caps the steps of every stage.
    config["steps_per_task_run"] = str(min(args.steps, math.ceil(args.samples / args.batch)))
    config["multitask_steps_run"] = str(
        min(args.steps * len(tasks), math.ceil(args.samples * len(tasks) / args.batch))
    )
    doc = {"tasks": tasks, "config": config, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    _plot(doc, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def _plot(doc: dict, path: Path) -> None:
    """One heatmap per sequential method, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seq = {k: v for k, v in doc["results"].items() if k != "multitask"}
    tasks = doc["tasks"]
    fig, axes = plt.subplots(1, len(seq), figsize=(3.4 * len(seq), 3.4), dpi=100, squeeze=False)
    for ax, (name, r) in zip(axes[0], seq.items(), strict=True):
        ax.imshow(r["matrix"], vmin=0, vmax=1, cmap="viridis")
        for i, row in enumerate(r["matrix"]):
            for j, v in enumerate(row):
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if v < 0.6 else "black",
                )
        ax.set_xticks(range(len(tasks)), tasks, rotation=40, fontsize=8)
        ax.set_yticks(range(len(tasks)), [f"after {t}" for t in tasks], fontsize=8)
        ax.set_title(f"{name}\navg {r['average_accuracy']:.2f}, BWT {r['bwt']:+.2f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
