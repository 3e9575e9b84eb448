"""SFT throughput: burnish's packed batches against padded batches and TRL's SFTTrainer.

Same model (random init from one seed), same chat data with widely varying lengths, same
optimizer and the same effective batches, measured in one run. The figure of merit is
non-padding tokens per second of training (forward + backward + optimizer step).

    python benchmarks/sft_throughput.py                 # packed vs padded (+ TRL if installed)
    python benchmarks/sft_throughput.py --steps 10 --no-trl

Writes benchmarks/results/sft_throughput.json and .png and prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from burnish.data import TokenizedDataset, collate_padded, tokenize_rows
from burnish.models import build_char_tokenizer, model_from_config, tiny_config
from burnish.tasks import get_task
from burnish.train.distributed import DistInfo
from burnish.train.sft import epoch_batches, rank_minibatches
from burnish.train.step import build_optimizer, train_step

OUT = Path(__file__).parent / "results"

# Tasks with knobs chosen so sample lengths range from ~20 to ~200 tokens.
VARIED = [
    ("addition", {"digits": 2}),
    ("sorting", {"min_len": 2, "max_len": 30}),
    ("reversal", {"min_len": 3, "max_len": 60}),
    ("arith_chain", {"min_operands": 2, "max_operands": 12}),
    ("counting", {"min_len": 4, "max_len": 80}),
]


def build_data(n_per_task: int, max_seq_len: int) -> TokenizedDataset:
    rows = []
    for name, knobs in VARIED:
        rows += [e.to_messages() for e in get_task(name, **knobs).generate(n_per_task, "train")]
    return tokenize_rows(rows, build_char_tokenizer(), max_seq_len, source="bench")


def fresh(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    cfg = tiny_config("llama", 103, args.hidden, args.layers, 4, 2, 2 * args.hidden)
    model = model_from_config(cfg, seed=0)
    opt = build_optimizer(list(model.parameters()), 1e-3, (0.9, 0.95), 0.0)
    return model, opt


def run_burnish(data: TokenizedDataset, batches: list[list[int]], args, packed: bool) -> dict:
    """Time ``len(batches) - warmup`` optimizer steps; packed or conventionally padded."""
    model, opt = fresh(args)
    info = DistInfo()
    tokens = slots = 0
    losses = []
    t0 = 0.0
    for s, batch in enumerate(batches):
        if s == args.warmup:
            t0 = time.perf_counter()
        if packed:
            mbs, total = rank_minibatches(
                batch, data, info, args.max_seq_len, args.max_tokens, 0, torch.float32
            )
        else:
            total = sum(data.loss_tokens()[i] for i in batch)
            mbs = [
                collate_padded(batch[i : i + args.micro], data.input_ids, data.labels, 0)
                for i in range(0, len(batch), args.micro)
            ]
        loss, _ = train_step(model, opt, mbs, total, 1.0, info)
        losses.append(loss)
        if s >= args.warmup:
            tokens += sum(m.real_tokens for m in mbs)
            slots += sum(m.input_ids.numel() for m in mbs)
    dt = time.perf_counter() - t0
    return {
        "tokens_per_s": tokens / dt,
        "seconds": dt,
        "real_tokens": tokens,
        "padding_share": 1 - tokens / slots,
        "losses": losses,
    }


def run_trl(rows_data: list[dict], args, mean_len: float) -> dict | None:
    """TRL SFTTrainer on the same chat rows (padded, per_device batch = --micro)."""
    try:
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer
    except ImportError:
        return None
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        start = 0.0

        def on_step_begin(self, a, state, control, **kw):
            if state.global_step == args.warmup:
                Clock.start = time.perf_counter()

    model, _ = fresh(args)
    tok = build_char_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SFTConfig(
            output_dir=tmp,
            per_device_train_batch_size=args.micro,
            gradient_accumulation_steps=args.batch // args.micro,
            max_steps=args.steps + args.warmup,
            learning_rate=1e-3,
            adam_beta2=0.95,
            weight_decay=0.0,
            lr_scheduler_type="constant",
            logging_steps=10_000,
            save_strategy="no",
            report_to=[],
            max_length=args.max_seq_len,
            packing=False,
            dataloader_num_workers=0,
            use_cpu=True,
            bf16=False,
            seed=0,
            disable_tqdm=True,
        )
        trainer = SFTTrainer(
            model=model,
            args=cfg,
            train_dataset=Dataset.from_list(rows_data),
            processing_class=tok,
            callbacks=[Clock()],
        )
        trainer.train()
        dt = time.perf_counter() - Clock.start
    tokens = mean_len * args.batch * args.steps  # same samples per step; lengths on average
    return {"tokens_per_s": tokens / dt, "seconds": dt, "real_tokens_estimated": tokens}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"packed": "burnish packed", "padded": "padded", "trl": "TRL SFTTrainer"}
    colors = {"packed": "tab:green", "padded": "tab:gray", "trl": "tab:blue"}
    names = [k for k in labels if results.get(k)]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    ax.bar(
        [labels[k] for k in names],
        [results[k]["tokens_per_s"] for k in names],
        color=[colors[k] for k in names],
    )
    ax.set_ylabel("non-padding tokens / s")
    ax.set_title("SFT throughput, same model/data/batches")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="measured optimizer steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--batch", type=int, default=64, help="effective batch (samples per step)")
    p.add_argument("--micro", type=int, default=16, help="padded/TRL micro-batch (sequences)")
    p.add_argument("--max-tokens", type=int, default=2048, help="packed minibatch token slots")
    p.add_argument("--max-seq-len", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--no-trl", action="store_true", help="skip the TRL peer")
    p.add_argument("--out", type=Path, default=OUT / "sft_throughput.json")
    args = p.parse_args()

    data = build_data(400, args.max_seq_len)
    lengths = data.lengths()
    batches = epoch_batches(len(data), args.batch, 0, 0)[: args.steps + args.warmup]
    results: dict = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}",
        "config": vars(args) | {"out": str(args.out)},
        "data": {
            "samples": len(data),
            "min_len": min(lengths),
            "max_len": max(lengths),
            "mean_len": sum(lengths) / len(lengths),
        },
    }
    results["packed"] = run_burnish(data, batches, args, packed=True)
    results["padded"] = run_burnish(data, batches, args, packed=False)
    # Same maths on the same batches: the first losses agree (fp32 round-off).
    results["first_loss_rel_diff"] = (
        abs(results["packed"]["losses"][0] - results["padded"]["losses"][0])
        / results["padded"]["losses"][0]
    )
    results["packed_over_padded"] = (
        results["packed"]["tokens_per_s"] / results["padded"]["tokens_per_s"]
    )
    if not args.no_trl:
        rows = []
        for name, knobs in VARIED:
            rows += [
                {"messages": e.to_messages()["messages"]}
                for e in get_task(name, **knobs).generate(400, "train")
            ]
        trl = run_trl(rows, args, results["data"]["mean_len"])
        results["trl"] = trl
        if trl:
            results["packed_over_trl"] = results["packed"]["tokens_per_s"] / trl["tokens_per_s"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for k in ("packed", "padded"):
        results[k]["losses"] = [round(x, 5) for x in results[k]["losses"]]
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"))
    print(
        f"data lengths {min(lengths)}..{max(lengths)} tokens "
        f"(mean {results['data']['mean_len']:.0f})"
    )
    for k in ("packed", "padded", "trl"):
        if results.get(k):
            print(f"{k:>7}: {results[k]['tokens_per_s']:,.0f} tokens/s")
    print(f"packed / padded = {results['packed_over_padded']:.2f}x")
    if results.get("packed_over_trl"):
        print(f"packed / TRL SFTTrainer = {results['packed_over_trl']:.2f}x")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
