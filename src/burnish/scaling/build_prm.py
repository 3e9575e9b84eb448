"""Train ``arith-prm``: a process reward model from step-checker labels.

Recipe (one readable loop): for every train prompt take (a) the gold solution, (b) contrastive
copies of it with one step's result nudged by a small amount (+-1, +-2, +-10, two digits
swapped) and the rest of the chain carried forward from the wrong value (or only the final
``Answer:`` value changed), and (c) ``samples`` solutions sampled from the policy at
temperature 1. Every step is labelled by the task's exact step checker (a step is good iff it
and every step before it are correct). Starting from the policy's weights, train the
two-class head (logits of the label tokens "+"/"-" at each newline separator, exactly what
:class:`~burnish.scaling.reward.HFProcessRewardModel` reads) with class-balanced
cross-entropy, warmup + cosine learning rate; evaluate on the test split (policy samples and
correct-vs-corrupted pairs); save a plain HF directory with card.json and README.md.
"""

from __future__ import annotations

import json
import math
import platform
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from burnish.eval.evaluate import evaluate
from burnish.eval.generate import generate_chat
from burnish.models.io import load_model, save_model
from burnish.models.zoo import ZOO_DIR, resolve_model
from burnish.scaling.reward import HFProcessRewardModel, prm_input_ids
from burnish.tasks import get_task

__all__ = ["PRMSpec", "build_arith_prm", "label_solutions"]


@dataclass(frozen=True)
class PRMSpec:
    """How ``arith-prm`` is made (recorded on its card)."""

    name: str = "arith-prm"
    description: str = (
        "Process reward model for arith_chain: `arith-policy` fine-tuned as a two-class PRM "
        "(logits of '+'/'-' at each newline step separator) on step-checker labels of gold "
        "solutions, minimally corrupted copies of them (one result off by a little, the rest "
        "carried forward) and the policy's own sampled solutions."
    )
    tasks: tuple[str, ...] = ("arith_chain",)
    parent: str = "arith-policy"
    prompts: int = 3000
    samples_per_task: int = 2  # sampled solutions per train prompt
    corruptions: int = 3  # corrupted copies of the gold solution per train prompt
    temperature: float = 1.0
    steps: int = 2500
    batch: int = 64
    lr: float = 1e-3
    warmup: int = 30
    dense: float = 0.0  # weight of the per-character auxiliary labels (0: separators only)
    seed: int = 0
    hidden_size: int = 128
    num_layers: int = 4
    separator: str = "\n"
    good: str = "+"
    bad: str = "-"


def label_solutions(task_name: str, prompt: str, completion: str) -> tuple[list[str], list[bool]]:
    """(steps, labels) of a sampled completion: a step is good iff it and all before are right."""
    task = get_task(task_name)
    steps = [line.strip() for line in completion.splitlines() if line.strip()]
    checks = task.check_steps(prompt, completion)
    labels, ok = [], True
    for c in checks:
        ok = ok and c
        labels.append(ok)
    return steps, labels


_STEP = re.compile(r"(-?\d+)([-+*])(\d+)=(-?\d+)$")
_DELTAS = (-10, -2, -1, 1, 2, 10)


def _nudge(value: int, rng: random.Random) -> int:
    """A wrong value close to ``value``: off by a little, or two adjacent digits swapped."""
    digits = str(abs(value))
    if len(digits) > 1 and rng.random() < 0.25:
        i = rng.randrange(len(digits) - 1)
        swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
        new = int(swapped) * (-1 if value < 0 else 1)
        if new != value:
            return new
    return value + rng.choice(_DELTAS)


def corrupt_solution(gold: str, rng: random.Random) -> str:
    """A minimally wrong copy of a gold ``arith_chain`` solution.

    One step's result (or only the final ``Answer:`` value) is nudged; the steps after a
    nudged result continue from the wrong value, as a policy that slipped once would.
    """
    lines = gold.splitlines()
    steps, answer = lines[:-1], lines[-1]
    k = rng.randrange(len(steps) + 1)
    if k == len(steps):  # only the answer line is wrong
        value = int(answer.split(":", 1)[1])
        return "\n".join([*steps, f"Answer: {_nudge(value, rng)}"])
    out, value = [], None
    for i, line in enumerate(steps):
        m = _STEP.match(line.replace(" ", ""))
        if m is None:
            raise ValueError(f"not an arith_chain step: {line!r}")
        left, op, right = int(m[1]) if value is None else value, m[2], int(m[3])
        value = left + right if op == "+" else left - right if op == "-" else left * right
        if i == k:
            value = _nudge(value, rng)
        out.append(f"{left}{op}{right}={value}")
    return "\n".join([*out, f"Answer: {value}"])


def _contrastive(task, prompts, corruptions, seed):
    """Gold solutions and ``corruptions`` corrupted copies of each, labelled by the checker."""
    rng = random.Random(seed)
    rows = []
    for p in prompts:
        gold = task.solve(p).answer
        for c in [gold, *(corrupt_solution(gold, rng) for _ in range(corruptions))]:
            rows.append((p, *label_solutions(task.name, p, c)))
    return rows


def _sample(model, tok, task, prompts, samples, temperature, seed):
    rows = []
    for i in range(0, len(prompts), 64):
        chunk = prompts[i : i + 64]
        outs = generate_chat(
            model, tok, chunk, task.max_new_tokens, samples, temperature, seed=seed + i
        )
        for p, comps in zip(chunk, outs, strict=True):
            rows += [(p, *label_solutions(task.name, p, c)) for c in comps]
    return [r for r in rows if r[1]]


def _char_labels(gold_lines, steps, labels):
    """Per-character labels of each step: good iff all steps before are good and the line so
    far is a prefix of the gold line (dense supervision that teaches "a mismatch happened")."""
    out, before = [], True
    for i, (step, lab) in enumerate(zip(steps, labels, strict=True)):
        ref = gold_lines[i] if i < len(gold_lines) else ""
        out.append([before and ref.startswith(step[: j + 1]) for j in range(len(step))])
        before = lab
    return out


def _encode(tok, rows, spec, task=None):
    """(ids, separator positions, step labels, character positions, character labels)."""
    data = []
    for p, steps, lab in rows:
        ids, pos = prm_input_ids(tok, p, steps, spec.separator)
        dpos, dlab = [], []
        if spec.dense > 0 and task is not None:
            gold = task.solve(p).answer.splitlines()
            for sep, step, chars in zip(pos, steps, _char_labels(gold, steps, lab), strict=True):
                n = len(tok(step, add_special_tokens=False)["input_ids"])
                if n == len(step):  # one token per character (the char tokenizer)
                    dpos += range(sep - n, sep)
                    dlab += chars
        data.append((ids, pos, lab, dpos, dlab))
    return data


def _loss(model, batch, label_ids, pad, weight=None, dense=0.0):
    longest = max(len(b[0]) for b in batch)
    ids = torch.full((len(batch), longest), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, (seq, *_) in enumerate(batch):
        ids[b, : len(seq)] = torch.tensor(seq)
        mask[b, : len(seq)] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits  # [B, T, V]
    rows = torch.tensor([b for b, e in enumerate(batch) for _ in e[1]])
    cols = torch.tensor([p for e in batch for p in e[1]])
    target = torch.tensor([0 if good else 1 for e in batch for good in e[2]])
    two = logits[rows, cols][:, label_ids]  # [n_steps, 2]: (good, bad)
    loss = torch.nn.functional.cross_entropy(two, target, weight=weight)
    if dense > 0 and any(e[3] for e in batch):
        rows = torch.tensor([b for b, e in enumerate(batch) for _ in e[3]])
        cols = torch.tensor([p for e in batch for p in e[3]])
        target = torch.tensor([0 if good else 1 for e in batch for good in e[4]])
        two = logits[rows, cols][:, label_ids]
        loss = loss + dense * torch.nn.functional.cross_entropy(two, target)
    return loss


def _prm_metrics(prm: HFProcessRewardModel, rows) -> dict:
    """Step-level accuracy at threshold 0.5 and final-step accuracy on held-out samples."""
    right = total = final_right = 0
    for p, steps, labels in rows:
        scores = prm.score_texts(p, [steps])[0]
        right += sum((s > 0.5) == lab for s, lab in zip(scores, labels, strict=True))
        total += len(labels)
        final_right += (scores[-1] > 0.5) == labels[-1]
    return {
        "step_accuracy": round(right / total, 4),
        "final_accuracy": round(final_right / len(rows), 4),
        "solutions": len(rows),
        "steps": total,
    }


def pair_metrics(prm: HFProcessRewardModel, task, prompts, seed: int = 0) -> dict:
    """How often the gold solution's final score beats a minimally wrong copy's.

    ``answer_off_by_one``: the same solution with ``Answer:`` one more than the gold value;
    ``step_corrupted``: one random result nudged (rest carried forward, see
    :func:`corrupt_solution`). Scores are read at the last separator (= the "model"/"last"
    aggregation)."""
    rng = random.Random(seed)
    wins = {"answer_off_by_one": 0, "step_corrupted": 0}
    for p in prompts:
        gold = task.solve(p)
        lines = gold.answer.splitlines()
        off = [*lines[:-1], f"Answer: {int(gold.final) + 1}"]
        bad = corrupt_solution(gold.answer, rng).splitlines()
        s_gold, s_off, s_bad = prm.score_texts(p, [lines, off, bad])
        wins["answer_off_by_one"] += s_gold[-1] > s_off[-1]
        wins["step_corrupted"] += s_gold[-1] > s_bad[-1]
    return {"pairs": len(prompts), **{k: round(v / len(prompts), 4) for k, v in wins.items()}}


def build_arith_prm(spec: PRMSpec = PRMSpec(), out_root: Path = ZOO_DIR, log=print) -> dict:
    """Sample, label, train, evaluate and save the PRM; returns its card."""
    t0 = time.time()
    torch.manual_seed(spec.seed)
    policy, tok = load_model(resolve_model(spec.parent))
    task = get_task(spec.tasks[0])
    prompts = [e.prompt for e in task.generate(spec.prompts, "train", seed=spec.seed)]
    rows = _sample(policy, tok, task, prompts, spec.samples_per_task, spec.temperature, 1)
    rows += _contrastive(task, prompts, spec.corruptions, spec.seed)
    test_prompts = [e.prompt for e in task.generate(200, "test", seed=7)]
    test_rows = _sample(policy, tok, task, test_prompts, 4, spec.temperature, 10_000)
    log(f"{len(rows)} train / {len(test_rows)} test solutions in {time.time() - t0:.0f}s")
    model, _ = load_model(resolve_model(spec.parent))  # fresh copy to train
    label_ids = [tok.convert_tokens_to_ids(tok.tokenize(t))[0] for t in (spec.good, spec.bad)]
    data = _encode(tok, rows, spec, task)
    # Class-balanced loss: good and bad steps weigh the same in total.
    n_good = sum(sum(lab) for _, _, lab in rows)
    n_bad = sum(len(lab) for _, _, lab in rows) - n_good
    weight = torch.tensor([0.5 / n_good, 0.5 / n_bad]) * (n_good + n_bad)
    log(f"{n_good} good / {n_bad} bad train steps")
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.0)
    rng = random.Random(spec.seed)
    model.train()
    loss = torch.tensor(0.0)
    for step in range(spec.steps):
        warm = min(1.0, (step + 1) / spec.warmup)
        cosine = 0.5 * (1 + math.cos(math.pi * step / spec.steps))
        for g in opt.param_groups:
            g["lr"] = spec.lr * warm * (0.05 + 0.95 * cosine)
        batch = rng.sample(data, spec.batch)
        loss = _loss(model, batch, label_ids, tok.pad_token_id, weight, spec.dense)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == spec.steps - 1:
            log(f"step {step} loss {loss.item():.4f} ({time.time() - t0:.0f}s)")
    model.eval()
    prm = HFProcessRewardModel(model, tok, spec.separator, spec.good, spec.bad)
    acc = evaluate(model, tok, list(spec.tasks), 64, batch_size=64, seed=0)
    card = {
        "name": spec.name,
        "description": spec.description,
        "architecture": model.config.architectures[0],
        "parameters": sum(p.numel() for p in model.parameters()),
        "spec": asdict(spec),
        "final_loss": float(loss.item()),
        "build_seconds": round(time.time() - t0, 1),
        "build_machine": f"{platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "check_sample": {"n": 64, "split": "test", "seed": 0, "decoding": "greedy"},
        # Greedy accuracy of the PRM read as a generator (it is a causal LM; it was not
        # trained to generate, so this only documents what greedy decoding of it does).
        "accuracy": {t: r.accuracy for t, r in acc.items()},
        "prm": {"separator": spec.separator, "good": spec.good, "bad": spec.bad},
        "prm_eval": {
            "split": "test",
            "samples_per_prompt": 4,
            **_prm_metrics(prm, test_rows),
            "gold_beats_corrupted": pair_metrics(prm, task, test_prompts),
        },
    }
    card["build_seconds"] = round(time.time() - t0, 1)
    save_model(
        model,
        tok,
        out_root / spec.name,
        extra_files={"card.json": json.dumps(card, indent=2) + "\n", "README.md": _readme(card)},
    )
    return card


def _readme(card: dict) -> str:
    s, e = card["spec"], card["prm_eval"]
    pairs = e["gold_beats_corrupted"]
    return "\n".join(
        [
            f"# {card['name']}",
            "",
            card["description"],
            "",
            f"- architecture: {card['architecture']} ({card['parameters']:,} parameters; "
            f"hidden {s['hidden_size']}, {s['num_layers']} layers); parent {s['parent']}",
            f"- data: {s['prompts']} train prompts, each with its gold solution, "
            f"{s['corruptions']} corrupted copies (one result off by +-1/2/10 or two digits "
            "swapped, the rest carried forward; or only the Answer value off) and "
            f"{s['samples_per_task']} policy samples (temperature {s['temperature']}); steps "
            "labelled by `check_steps` (good iff this step and all before it are correct)",
            f"- training: {s['steps']} steps x {s['batch']} solutions, lr {s['lr']} "
            f"({s['warmup']}-step warmup, cosine decay), class-balanced two-class "
            f"cross-entropy on the '{s['good']}'/'{s['bad']}' logits at each newline; final "
            f"loss {card['final_loss']:.4f}",
            f"- build time: {card['build_seconds']} s on {card['build_machine']}",
            "- usage: `burnish.scaling.load_prm('arith-prm')`; score of a step = "
            "softmax('+', '-' logits)[0] at the newline after it",
            "",
            f"## Held-out quality ({e['solutions']} policy solutions, {e['steps']} steps)",
            "",
            f"- step accuracy (score > 0.5 vs checker label): {e['step_accuracy']:.3f}",
            f"- final-step accuracy (is the whole solution right): {e['final_accuracy']:.3f}",
            f"- gold solution scores above the same solution with `Answer:` one too high: "
            f"{pairs['answer_off_by_one']:.3f} of {pairs['pairs']} test problems",
            f"- gold solution scores above a copy with one step result nudged (rest carried "
            f"forward): {pairs['step_corrupted']:.3f} of {pairs['pairs']} test problems",
            "",
            "## Greedy accuracy as a generator (64 test problems, seed 0)",
            "",
            "| task | accuracy |",
            "|---|---|",
            *[f"| {t} | {a:.3f} |" for t, a in card["accuracy"].items()],
            "",
        ]
    )


if __name__ == "__main__":
    import sys

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ZOO_DIR
    print(json.dumps(build_arith_prm(out_root=out), indent=2))
