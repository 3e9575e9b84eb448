"""Dr.SoW in miniature: reward accuracy against the alignment gap, the label -> DPO / SimPO
loop, a real strong/weak pair locally and through ``burnish serve``, and DPO's cost.

Parts (``--parts``, default all; a part rerun replaces only its own entry in the JSON):

- ``gap``: a preference set with exact ground truth on four zoo tasks (test-split prompts, held
  out from every training run here): chosen = the task's gold answer, rejected = a wrong
  sample of ``qwen2-mix`` (a model in no strong/weak pair, so neither side wrote the
  rejected answers). Strong/weak pairs with graded gaps: the ``ft-*`` models and
  ``arith-policy`` against ``base``, checkpoints of one SFT run from ``base`` at increasing
  steps against ``base`` and against each other, the ``ft-*`` models against one another, and
  every pair reversed. The gap of a (pair, task) is the strong model's greedy accuracy minus
  the weak one's; Dr.SoW's pair accuracy on that task's subset is set against it (Spearman
  rho), for the summed and the per-token-mean reward.
- ``loop``: ``arith-policy`` samples k responses per train-split prompt; ``burnish label``'s
  code keeps best vs worst under Dr.SoW (the last SFT checkpoint over ``base``; and
  ``arith-policy`` over ``base``, the paper's instruct-over-its-base pair) and under the task
  checker (oracle: a correct sample over a wrong one); DPO and SimPO on each; test accuracy
  against the SFT policy.
- ``real``: SmolLM2-135M-Instruct (strong) over Gemma-3-270m base (weak, another tokenizer
  and chat template) on a small preference set (pydoc topics; arithmetic), scored in
  process and through two ``burnish serve`` subprocesses; the largest difference is reported.
- ``cost``: ``burnish dpo``'s recipe against TRL's DPOTrainer (the ``bench`` extra) on the
  same pairs, model and batches: non-padding tokens per second, as a ratio in one run; and
  TRL's evaluation loss against burnish's on the same model, reference and pairs.

    python benchmarks/drsow.py                      # everything
    python benchmarks/drsow.py --parts loop,cost    # some parts (the rest are kept)

Writes benchmarks/results/drsow.json and drsow.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import permutations
from pathlib import Path

import torch
import transformers

from burnish.data.preference import load_pairs
from burnish.eval.evaluate import evaluate
from burnish.eval.generate import generate_chat
from burnish.io import atomic_write_text, read_jsonl, write_jsonl
from burnish.models import load_model
from burnish.models.gguf import import_gguf
from burnish.models.zoo import resolve_model
from burnish.reward import DrSow, LocalLogProbs, ServerLogProbs
from burnish.reward.bench import PairResult, summarize
from burnish.reward.label import LabelSettings, LocalSampler, label_prompts
from burnish.tasks import get_task
from burnish.train.config import DPOConfig, SFTConfig
from burnish.train.dpo import run_dpo
from burnish.train.preference import dpo_loss
from burnish.train.sft import run_sft
from serve import launch, stop  # benchmarks/serve.py: the server launcher

OUT = Path(__file__).parent / "results"
TASKS = ["addition", "sorting", "reversal", "arith_chain"]
ZOO_STRONG = ["ft-addition", "ft-sorting", "ft-reversal", "arith-policy"]
REJECTED_SAMPLER = "qwen2-mix"
GEMMA_TEMPLATE = Path(__file__).parents[1] / "examples" / "chat_templates" / "gemma3.jinja"
Conversation = list[dict[str, str]]
Pair = tuple[Conversation, Conversation, str]


# ---- shared helpers -----------------------------------------------------------------------


def user(text: str) -> Conversation:
    return [{"role": "user", "content": text}]


def reply(text: str) -> Conversation:
    return [{"role": "assistant", "content": text}]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's r of the ranks (ties get their average rank)."""

    def ranks(v: Sequence[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    a, b = torch.tensor(ranks(x)), torch.tensor(ranks(y))
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def scores_of(logps: list[tuple[float, int]], normalize: str) -> list[float]:
    return [s if normalize == "sum" else s / max(1, n) for s, n in logps]


def pair_accuracy(
    pairs: Sequence[Pair], strong: list[tuple[float, int]], weak: list[tuple[float, int]], norm: str
) -> dict:
    """RewardBench-style summary of Dr.SoW from two models' cached log-probs over
    ``[chosen..., rejected...]``."""
    r = [a - b for a, b in zip(scores_of(strong, norm), scores_of(weak, norm), strict=True)]
    n = len(pairs)
    return summarize([PairResult(s, r[i], r[n + i]) for i, (_, _, s) in enumerate(pairs)])


def convs_of(pairs: Sequence[Pair]) -> list[Conversation]:
    return [c for c, _, _ in pairs] + [r for _, r, _ in pairs]


# ---- part: gap ----------------------------------------------------------------------------


def ground_truth_pairs(n_per_task: int, k: int, seed: int) -> list[Pair]:
    """Chosen = gold answer, rejected = the first wrong sample of REJECTED_SAMPLER."""
    model, tok = load_model(resolve_model(REJECTED_SAMPLER))
    pairs: list[Pair] = []
    for name in TASKS:
        task = get_task(name)
        examples = task.generate(n_per_task, "test", seed=seed)
        samples = generate_chat(
            model, tok, [e.prompt for e in examples], task.max_new_tokens, k, 1.0, seed=seed
        )
        for e, texts in zip(examples, samples, strict=True):
            wrong = next((t for t in texts if t.strip() and not task.score(e.prompt, t)), None)
            if wrong is not None:
                q = user(e.prompt)
                pairs.append((q + reply(e.answer), q + reply(wrong), name))
    return pairs


def sft_checkpoints(tmp: Path, steps: list[int], batch: int) -> dict[str, Path]:
    """One SFT run of ``base`` on the four tasks' train split; a checkpoint at each step."""
    rows = []
    for name in TASKS:
        n = batch * max(steps) // len(TASKS) + 1
        rows += [e.to_messages() for e in get_task(name).generate(n, "train", seed=5)]
    data = tmp / "sft_mix.jsonl"
    write_jsonl(data, rows)
    every = batch * steps[0]
    assert all(s % steps[0] == 0 for s in steps), "steps must be multiples of the first"
    cfg = SFTConfig(
        model="base",
        data=str(data),
        output_dir=str(tmp / "sft"),
        effective_batch_size=batch,
        max_steps=max(steps),
        lr=1e-3,
        save_every_samples=every,
        save_state=False,
        save_epoch_end=False,
        seed=0,
    )
    run_sft(cfg, progress=False)
    return {f"sft@{s}": tmp / "sft" / "checkpoints" / f"samples_{s * batch}" for s in steps}


def model_pairs(names: list[str], sft: list[str]) -> list[tuple[str, str, str]]:
    """(strong, weak, family) with the reversed pairs too."""
    out = [(s, "base", "zoo fine-tune vs base") for s in ZOO_STRONG]
    out += [(s, "base", "SFT checkpoint vs base") for s in sft]
    out += [(b, a, "later vs earlier checkpoint") for i, a in enumerate(sft) for b in sft[i + 1 :]]
    out += [(a, b, "fine-tune vs fine-tune") for a, b in permutations(ZOO_STRONG, 2)]
    forward = [p for p in out if p[2] != "fine-tune vs fine-tune"]
    out += [(w, s, f"reversed: {f}") for s, w, f in forward]
    assert all(s in names and w in names for s, w, _ in out)
    return out


def part_gap(args: argparse.Namespace, ckpts: dict[str, Path]) -> dict:
    t0 = time.perf_counter()
    pairs = ground_truth_pairs(args.gap_prompts, 8, seed=7)
    paths = {n: resolve_model(n) for n in ["base", *ZOO_STRONG]} | ckpts
    convs = convs_of(pairs)
    logps, accuracy = {}, {}
    for name, path in paths.items():
        model, tok = load_model(path)
        logps[name] = LocalLogProbs(model, tok, name=name)(convs)
        res = evaluate(model, tok, TASKS, n_problems=args.gap_eval)
        accuracy[name] = {t: r.accuracy for t, r in res.items()}
    rows = []
    for strong, weak, family in model_pairs(list(paths), [n for n in paths if "@" in n]):
        for norm in ("sum", "mean"):
            summ = pair_accuracy(pairs, logps[strong], logps[weak], norm)
            for task in TASKS:
                rows.append(
                    {
                        "strong": strong,
                        "weak": weak,
                        "family": family,
                        "normalize": norm,
                        "task": task,
                        "gap": accuracy[strong][task] - accuracy[weak][task],
                        "drsow_accuracy": summ["subsets"][task]["accuracy"],
                        "pairs": summ["subsets"][task]["n"],
                    }
                )
    rho = {}
    for norm in ("sum", "mean"):
        sel = [r for r in rows if r["normalize"] == norm]
        gaps, accs = [r["gap"] for r in sel], [r["drsow_accuracy"] for r in sel]
        rho[norm] = {"per_pair_and_task": spearman(gaps, accs), "points": len(sel)}
        by_pair: dict[tuple[str, str], list[dict]] = {}
        for r in sel:
            by_pair.setdefault((r["strong"], r["weak"]), []).append(r)
        gaps = [sum(r["gap"] for r in v) / len(v) for v in by_pair.values()]
        accs = [sum(r["drsow_accuracy"] for r in v) / len(v) for v in by_pair.values()]
        rho[norm] |= {"per_pair": spearman(gaps, accs), "pairs": len(by_pair)}
    return {
        "preference_set": {
            "pairs": len(pairs),
            "per_task": {t: sum(p[2] == t for p in pairs) for t in TASKS},
            "rejected_sampler": REJECTED_SAMPLER,
            "split": "test",
        },
        "model_accuracy": accuracy,
        "eval_problems_per_task": args.gap_eval,
        "rows": rows,
        "spearman": rho,
        "seconds": time.perf_counter() - t0,
    }


# ---- part: loop ---------------------------------------------------------------------------


class CachedSampler:
    """One sampler's outputs kept per (chunk seed), so two labellings see the same samples."""

    def __init__(self, inner: LocalSampler) -> None:
        self.inner, self.cache = inner, {}

    def __call__(self, prompts: Sequence[Conversation], k: int, seed: int) -> list[list[str]]:
        if seed not in self.cache:
            self.cache[seed] = self.inner(prompts, k, seed)
        return self.cache[seed]


def oracle_scorer(task_name: str):
    task = get_task(task_name)

    def score(convs: Sequence[Conversation]) -> list[float]:
        return [float(task.score(c[-2]["content"], c[-1]["content"])) for c in convs]

    return score


def label_quality(path: Path, task_name: str) -> dict:
    task = get_task(task_name)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    ok_c = [task.score(r["prompt"][-1]["content"], r["chosen"][0]["content"]) for r in rows]
    ok_r = [task.score(r["prompt"][-1]["content"], r["rejected"][0]["content"]) for r in rows]
    n = max(1, len(rows))
    return {
        "pairs": len(rows),
        "chosen_correct": sum(ok_c) / n,
        "rejected_correct": sum(ok_r) / n,
        "right_order": sum(c and not r for c, r in zip(ok_c, ok_r, strict=True)) / n,
        "wrong_order": sum(r and not c for c, r in zip(ok_c, ok_r, strict=True)) / n,
    }


def label_loop(args: argparse.Namespace, tmp: Path, strong: Path) -> dict[str, dict]:
    """arith-policy's samples labelled by Dr.SoW (``strong`` over base) and by the checker;
    per labelling: the pairs file and the labels' quality against the checker."""
    task = get_task("arith_chain")
    prompts = [
        (f"p{i}", user(e.prompt))
        for i, e in enumerate(task.generate(args.loop_prompts, "train", seed=11))
    ]
    policy, ptok = load_model(resolve_model("arith-policy"))
    settings = LabelSettings(k=args.k, temperature=1.0, max_tokens=task.max_new_tokens, chunk=64)
    sampler = CachedSampler(LocalSampler(policy, ptok, settings))
    base = LocalLogProbs(*load_model(resolve_model("base")), name="base")
    sft = LocalLogProbs(*load_model(strong), name="strong")
    labels = {
        "drsow": DrSow(sft, base).score,  # the gap run's last checkpoint over base
        "drsow self": DrSow(LocalLogProbs(policy, ptok, name="policy"), base).score,
        "oracle": oracle_scorer("arith_chain"),
    }
    data, quality = {}, {}
    for name, scorer in labels.items():
        out = tmp / f"pairs_{name}.jsonl"
        margin = 0.5 if name == "oracle" else 0.0  # oracle: one correct and one wrong sample
        label_prompts(prompts, sampler, scorer, out, replace(settings, margin=margin))
        data[name], quality[name] = out, label_quality(out, "arith_chain")
    return {"files": data, "quality": quality, "prompts": len(prompts)}


def part_loop(args: argparse.Namespace, tmp: Path, labels: dict) -> dict:
    t0 = time.perf_counter()
    runs = {"sft policy": resolve_model("arith-policy")}
    recipes = {
        "dpo": {"loss": "sigmoid", "beta": args.dpo_beta, "lr": args.dpo_lr,
                "sft_weight": args.sft_weight},
        "simpo": {"loss": "simpo", "beta": args.simpo_beta, "simpo_gamma": args.simpo_gamma,
                  "lr": args.simpo_lr, "sft_weight": args.sft_weight},
    }  # fmt: skip
    for label, path in labels["files"].items():
        for recipe, opts in recipes.items():
            cfg = DPOConfig(
                model="arith-policy",
                data=str(path),
                output_dir=str(tmp / f"{recipe}_{label}"),
                epochs=args.loop_epochs,
                effective_batch_size=32,
                save_state=False,
                save_epoch_end=False,
                seed=0,
                **opts,
            )
            runs[f"{recipe} on {label} labels"] = run_dpo(cfg, progress=False).final_model
    accuracy = {}
    for name, path in runs.items():
        model, tok = load_model(path)
        accuracy[name] = evaluate(model, tok, ["arith_chain"], n_problems=args.loop_eval)[
            "arith_chain"
        ].accuracy
    return {
        "policy": "arith-policy",
        "labellers": {
            "drsow": {"strong": f"sft@{args.sft_steps[-1]}", "weak": "base", "normalize": "sum"},
            "drsow self": {"strong": "arith-policy", "weak": "base", "normalize": "sum"},
            "oracle": "the arith_chain checker: a correct sample over a wrong one",
        },
        "prompts": labels["prompts"],
        "k": args.k,
        "labels": labels["quality"],
        "recipes": recipes,
        "epochs": args.loop_epochs,
        "test_accuracy": accuracy,
        "eval_problems": args.loop_eval,
        "seconds": time.perf_counter() - t0,
    }


# ---- part: real ---------------------------------------------------------------------------

PYDOC_STATEMENTS = ["assert", "break", "continue", "del", "for", "global", "if", "import",
                    "pass", "return", "while", "with"]  # fmt: skip


def first_sentence(text: str) -> str:
    """The first sentence after a pydoc topic's underlined heading."""
    lines = text.strip().splitlines()
    body = lines[2:] if len(lines) > 2 and set(lines[1].strip()) <= set("*=-") else lines
    para = " ".join(next(p for p in "\n".join(body).split("\n\n") if p.strip()).split())
    return para.split(". ")[0].rstrip(".") + "."


def real_pairs() -> list[Pair]:
    """pydoc statements (chosen: the topic's first sentence; rejected: the next topic's) and
    two-number sums (rejected: off by 1 or 10)."""
    from pydoc_data.topics import topics

    firsts = [first_sentence(topics[n]) for n in PYDOC_STATEMENTS]
    pairs: list[Pair] = []
    for i, name in enumerate(PYDOC_STATEMENTS):
        q = user(f'In Python, what does the "{name}" statement do? Answer in one sentence.')
        wrong = firsts[(i + 1) % len(firsts)]
        pairs.append((q + reply(firsts[i]), q + reply(wrong), "pydoc"))
    for i in range(12):
        a, b, off = 13 + 7 * i, 48 - 3 * i, (1, -1, 10, -10)[i % 4]
        q = user(f"What is {a} + {b}?")
        pairs.append(
            (q + reply(f"{a} + {b} = {a + b}."), q + reply(f"{a} + {b} = {a + b + off}."), "sums")
        )
    return pairs


def brief(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "pairs"}


def part_real(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    pairs = real_pairs()
    convs = convs_of(pairs)
    local, served, seconds = {}, {}, {}
    for role, name, template in (
        ("strong", "smollm2-135m-instruct", None),
        ("weak", "gemma-3-270m", GEMMA_TEMPLATE),  # a base checkpoint: no template of its own
    ):
        path = import_gguf(name)
        model, tok = load_model(path, chat_template=template)
        t1 = time.perf_counter()
        local[role] = LocalLogProbs(model, tok, name=name)(convs)
        seconds[f"{role} local"] = time.perf_counter() - t1
        del model
        extra = ["--chat-template", str(template)] if template else []
        proc, url = launch([str(path), "--served-model-name", name, *extra], args.server_threads)
        try:
            t1 = time.perf_counter()
            served[role] = ServerLogProbs(url, name, tok, concurrency=2)(convs)
            seconds[f"{role} served"] = time.perf_counter() - t1
        finally:
            stop(proc)
    diff = {
        role: max(abs(a - b) for (a, _), (b, _) in zip(local[role], served[role], strict=True))
        for role in local
    }
    same_tokens = all([n for _, n in local[role]] == [n for _, n in served[role]] for role in local)
    norms = ("sum", "mean")
    reward_local = {n: pair_accuracy(pairs, local["strong"], local["weak"], n) for n in norms}
    reward_served = {n: pair_accuracy(pairs, served["strong"], served["weak"], n) for n in norms}
    both = [a - b for (a, _), (b, _) in zip(local["strong"], local["weak"], strict=True)]
    both_s = [a - b for (a, _), (b, _) in zip(served["strong"], served["weak"], strict=True)]
    return {
        "strong": "smollm2-135m-instruct",
        "weak": "gemma-3-270m",
        "pairs": len(pairs),
        "local": {n: brief(s) for n, s in reward_local.items()},
        "served": {n: brief(s) for n, s in reward_served.items()},
        "max_abs_logprob_diff": diff,
        "max_abs_reward_diff": max(abs(a - b) for a, b in zip(both, both_s, strict=True)),
        "same_token_counts": same_tokens,
        "response_tokens": {role: sum(n for _, n in local[role]) for role in local},
        "seconds": seconds | {"total": time.perf_counter() - t0},
    }


# ---- part: cost ---------------------------------------------------------------------------


@dataclass
class CostCase:
    """One throughput comparison: a model, a pairs file, pairs per step, timed steps."""

    name: str
    model: Path
    pairs: Path
    per_step: int
    micro: int  # TRL's micro-batch (pairs); burnish packs the step by tokens
    steps: int
    warmup: int
    template: Path | None = None


def trl_rows(pairs: Sequence[Pair]) -> list[dict]:
    """TRL's conversational preference rows."""
    return [{"prompt": c[:-1], "chosen": [c[-1]], "rejected": [r[-1]]} for c, r, _ in pairs]


def trl_config(tmp: Path, **over: object):
    from trl import DPOConfig as TRLDPOConfig

    base = dict(
        output_dir=str(tmp),
        learning_rate=1e-5,
        adam_beta2=0.95,
        weight_decay=0.0,
        lr_scheduler_type="constant",
        max_grad_norm=1.0,
        beta=0.1,
        logging_steps=10_000,
        save_strategy="no",
        report_to=[],
        max_length=1024,
        dataloader_num_workers=0,
        use_cpu=True,
        bf16=False,
        seed=0,
        disable_tqdm=True,
    )
    return TRLDPOConfig(**(base | over))


def run_trl_dpo(case: CostCase, tmp: Path, precompute: bool) -> float:
    """Seconds of TRL DPOTrainer's timed steps (after ``case.warmup``)."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOTrainer

    class Clock(TrainerCallback):
        start = 0.0

        def on_step_begin(self, a, state, control, **kw):
            if state.global_step == case.warmup:
                Clock.start = time.perf_counter()

    model, tok = load_model(case.model, chat_template=case.template)
    ref = None if precompute else load_model(case.model)[0]
    cfg = trl_config(
        tmp,
        per_device_train_batch_size=case.micro,
        gradient_accumulation_steps=case.per_step // case.micro,
        max_steps=case.steps + case.warmup,
        precompute_ref_log_probs=precompute,
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=ref,
        args=cfg,
        train_dataset=Dataset.from_list(trl_rows(load_pairs(case.pairs))),
        processing_class=tok,
        callbacks=[Clock()],
    )
    trainer.train()
    return time.perf_counter() - Clock.start


def run_burnish_dpo(case: CostCase, tmp: Path) -> dict:
    """``burnish dpo``'s recipe with its defaults; tokens and seconds of the timed steps."""
    cfg = DPOConfig(
        model=str(case.model),
        data=str(case.pairs),
        output_dir=str(tmp),
        max_steps=case.steps + case.warmup,
        epochs=1000,  # max_steps decides
        effective_batch_size=case.per_step,
        lr=1e-5,
        save_state=False,
        save_epoch_end=False,
        chat_template=str(case.template) if case.template else None,
        seed=0,
    )
    res = run_dpo(cfg, progress=False)
    rows = [json.loads(x) for x in (res.output_dir / "metrics.jsonl").read_text().splitlines()]
    timed = rows[case.warmup :]
    tokens = sum(r["tokens"] for r in timed)
    seconds = sum(r["tokens"] / r["tokens_per_s"] for r in timed)
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}


def whole_batches(path: Path, per_step: int, out: Path) -> Path:
    """The first multiple of ``per_step`` pairs of ``path`` (no partial batch for anyone)."""
    rows = read_jsonl(path)
    write_jsonl(out, rows[: len(rows) // per_step * per_step])
    return out


def mean_pair_tokens(case: CostCase) -> float:
    """Non-padding tokens of a pair (the prompt twice, both responses)."""
    from burnish.data.tokenize import tokenize_response

    _, tok = load_model(case.model, chat_template=case.template)
    pairs = load_pairs(case.pairs)
    total = sum(len(tokenize_response(c, tok)[0]) + len(tokenize_response(r, tok)[0])
                for c, r, _ in pairs)  # fmt: skip
    return total / len(pairs)


def cost_case(case: CostCase, tmp: Path, live_reference: bool) -> dict:
    ours = run_burnish_dpo(case, tmp / "burnish")
    tokens = mean_pair_tokens(case) * case.per_step * case.steps  # TRL: the same pairs, shuffled
    peers = {}
    for precompute in (True, False) if live_reference else (True,):
        seconds = run_trl_dpo(case, tmp / f"trl_{precompute}", precompute)
        key = "trl precomputed reference" if precompute else "trl live reference"
        peers[key] = {"seconds": seconds, "tokens_per_s": tokens / seconds,
                      "tokens_estimated": tokens}  # fmt: skip
    return {
        "model": case.name,
        "pairs_per_step": case.per_step,
        "trl_micro_batch": case.micro,
        "timed_steps": case.steps,
        "burnish": ours,
        "peers": peers,
        "ratio_vs": {k: ours["tokens_per_s"] / v["tokens_per_s"] for k, v in peers.items()},
    }


def trl_loss_check(pairs_path: Path, tmp: Path, n_pairs: int) -> dict:
    """TRL's evaluation loss and margins (one batch holding every pair) against burnish's
    losses from per-sequence log-probs, policy arith-policy, reference base."""
    from datasets import Dataset
    from trl import DPOTrainer

    pairs = load_pairs(pairs_path)[:n_pairs]
    policy, tok = load_model(resolve_model("arith-policy"))
    ref, _ = load_model(resolve_model("base"))
    convs = convs_of(pairs)
    lp = torch.tensor(LocalLogProbs(policy, tok)(convs), dtype=torch.float64)
    lr_ = torch.tensor(LocalLogProbs(ref, tok)(convs), dtype=torch.float64)
    n = len(pairs)
    rows = trl_rows(pairs)
    out = {}
    for kind in ("sigmoid", "ipo", "hinge"):
        ours = dpo_loss(lp[:n, 0], lp[n:, 0], lr_[:n, 0], lr_[n:, 0], 0.1, kind, 0.0,
                        lp[:n, 1], lp[n:, 1]).metrics()  # fmt: skip
        cfg = trl_config(tmp / kind, loss_type=[kind], per_device_eval_batch_size=n)
        trainer = DPOTrainer(
            model=policy,
            ref_model=ref,
            args=cfg,
            train_dataset=Dataset.from_list(rows),
            eval_dataset=Dataset.from_list(rows),
            processing_class=tok,
        )
        theirs = trainer.evaluate()
        out[kind] = {
            "burnish_loss": ours["loss"],
            "trl_loss": theirs["eval_loss"],
            "burnish_margin": ours["rewards/margins"],
            "trl_margin": theirs.get("eval_rewards/margins"),
            "abs_diff": abs(ours["loss"] - theirs["eval_loss"]),
        }
    return {"pairs": n, "policy": "arith-policy", "reference": "base", "losses": out}


def part_cost(args: argparse.Namespace, tmp: Path, pairs_path: Path) -> dict:
    try:
        import trl
    except ImportError:
        return {"skipped": "TRL is not installed (pip install -e '.[bench]')"}
    tmp.mkdir(parents=True, exist_ok=True)
    zoo = CostCase("arith-policy", resolve_model("arith-policy"),
                   whole_batches(pairs_path, 32, tmp / "zoo_pairs.jsonl"), 32, args.cost_micro,
                   args.cost_steps, args.cost_warmup)  # fmt: skip
    doc = {"trl_version": trl.__version__, "threads": args.threads}
    doc["zoo"] = cost_case(zoo, tmp / "zoo", live_reference=True)
    if args.cost_real:
        real = tmp / "real_pairs.jsonl"
        write_jsonl(real, [r | {"subset": s} for r, (_, _, s) in
                           zip(trl_rows(real_pairs()), real_pairs(), strict=True)])  # fmt: skip
        smol = CostCase("smollm2-135m-instruct", import_gguf("smollm2-135m-instruct"), real,
                        8, 4, 3, 1)  # fmt: skip
        doc["smollm2"] = cost_case(smol, tmp / "smol", live_reference=False)
    doc["loss_check"] = trl_loss_check(pairs_path, tmp / "loss", args.loss_pairs)
    return doc


# ---- plot and main ------------------------------------------------------------------------


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=110)
    gap = doc.get("gap")
    if gap:
        ax = axes[0]
        for norm, marker in (("sum", "o"), ("mean", "x")):
            sel = [r for r in gap["rows"] if r["normalize"] == norm]
            rho = gap["spearman"][norm]["per_pair_and_task"]
            ax.scatter([r["gap"] for r in sel], [r["drsow_accuracy"] for r in sel], s=12,
                       marker=marker, alpha=0.6, label=f"{norm} (rho {rho:.2f})")  # fmt: skip
        ax.axhline(0.5, color="gray", lw=0.8)
        ax.set_xlabel("alignment gap (strong - weak task accuracy)")
        ax.set_ylabel("Dr.SoW pair accuracy")
        ax.set_title("reward accuracy vs alignment gap (zoo)")
        ax.legend(fontsize=8)
    loop = doc.get("loop")
    if loop:
        ax = axes[1]
        names = list(loop["test_accuracy"])
        ax.barh(names, [loop["test_accuracy"][n] for n in names], color="tab:green")
        ax.set_xlabel("arith_chain test accuracy (greedy)")
        ax.set_title("label -> preference-tune loop")
        ax.invert_yaxis()
    cost = doc.get("cost")
    if cost and "zoo" in cost:
        ax = axes[2]
        cases = [c for c in ("zoo", "smollm2") if c in cost]
        names, vals = [], []
        for c in cases:
            case = cost[c]
            ratios = case["ratio_vs"]
            for peer, r in ratios.items():
                ref = peer.removeprefix("trl ").replace("reference", "ref")
                names.append(f"{c}\nvs TRL, {ref}")
                vals.append(r)
        ax.bar(range(len(vals)), vals, color="tab:green")
        ax.set_xticks(range(len(vals)), names, fontsize=7)
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_ylabel("burnish / TRL DPOTrainer tokens per s")
        ax.set_title("DPO cost, same pairs, model and batches")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--parts", default="gap,loop,real,cost")
    p.add_argument("--gap-prompts", type=int, default=60, help="test prompts per task")
    p.add_argument("--gap-eval", type=int, default=100, help="problems per task for the gap")
    p.add_argument("--sft-steps", type=lambda s: [int(x) for x in s.split(",")],
                   default=[10, 20, 40, 80, 160, 320])  # fmt: skip
    p.add_argument("--loop-prompts", type=int, default=768)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--loop-epochs", type=int, default=3)
    p.add_argument("--loop-eval", type=int, default=400)
    p.add_argument("--dpo-beta", type=float, default=0.1)
    p.add_argument("--dpo-lr", type=float, default=1e-5)
    p.add_argument("--simpo-beta", type=float, default=2.0)
    p.add_argument("--simpo-gamma", type=float, default=0.5)
    p.add_argument("--simpo-lr", type=float, default=1e-5)
    p.add_argument("--sft-weight", type=float, default=0.0, help="RPO's NLL term on chosen")
    p.add_argument("--cost-steps", type=int, default=12)
    p.add_argument("--cost-warmup", type=int, default=2)
    p.add_argument("--cost-micro", type=int, default=8, help="TRL micro-batch (pairs)")
    p.add_argument("--no-cost-real", dest="cost_real", action="store_false",
                   help="skip SmolLM2 in the cost part")  # fmt: skip
    p.add_argument("--loss-pairs", type=int, default=64)
    p.add_argument("--server-threads", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    parts = set(args.parts.split(","))
    unknown = parts - {"gap", "loop", "real", "cost"}
    if unknown:
        p.error(f"unknown parts {sorted(unknown)}")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers.utils.logging.disable_progress_bar()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "drsow.json"
    doc = json.loads(path.read_text()) if path.is_file() else {}
    doc["machine"] = f"{platform.machine()}, torch {torch.__version__}, {args.threads} threads"

    def save() -> None:
        atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
        plot(doc, args.out / "drsow.png")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if parts & {"gap", "loop", "cost"}:  # the labeller is the last checkpoint
            ckpts = sft_checkpoints(
                tmp, args.sft_steps if "gap" in parts else args.sft_steps[-1:], 64
            )
        if "gap" in parts:
            doc["gap"] = part_gap(args, ckpts)
            save()
        if parts & {"loop", "cost"}:
            labeller = ckpts[f"sft@{args.sft_steps[-1]}"]
            labels = label_loop(args, tmp / "loop", labeller)
        if "loop" in parts:
            doc["loop"] = part_loop(args, tmp / "loop", labels)
            save()
        if "real" in parts:
            doc["real"] = part_real(args)
            save()
        if "cost" in parts:
            doc["cost"] = part_cost(args, tmp / "cost", tmp / "loop" / "pairs_drsow.jsonl")
            save()
    print(json.dumps({k: v for k, v in doc.items() if k != "gap"}, indent=1)[:6000])
    if "gap" in doc:
        print("gap spearman:", json.dumps(doc["gap"]["spearman"]))
    print(f"wrote {path} and drsow.png")


if __name__ == "__main__":
    main()
