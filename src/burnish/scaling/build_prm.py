"""Train ``arith-prm``: a process reward model from step-checker labels.

Data: for every train prompt (a) the gold solution, (b) contrastive copies of it with one
step's result nudged by a small amount (+-1, +-2, +-10, two digits swapped) and the rest of
the chain carried forward from the wrong value (or only the final ``Answer:`` value changed),
and (c) ``samples_per_task`` solutions sampled from the policy at temperature 1. Every step is
labelled by the task's exact step checker (a step is good iff it and every step before it are
correct).

Two kinds of PRM, each trained in one readable loop (class-balanced loss, warmup + cosine):

- ``likelihood`` (the shipped ``arith-prm``): the policy is first fine-tuned on gold solutions
  into a better calculator (the "trunk"); then the trunk, a scale ``beta`` and a ``bias`` are
  fitted with binary cross-entropy so that sigmoid(beta * the answer's log-likelihood so far
  + bias) predicts each step label (read by
  :class:`~burnish.scaling.reward.LikelihoodProcessRewardModel`).
- ``two_class``: the Qwen2.5-Math-PRM layout: the logits of label tokens "+"/"-" at each
  newline separator (:class:`~burnish.scaling.reward.HFProcessRewardModel`), optionally on a
  deeper, untied copy of the policy. On this zoo it learns little: in nine configurations
  tried (fresh extra layers, untied head, frozen policy, dense per-character labels, the
  stronger trunk, per-step local labels) a gold solution outscored the same solution with its
  answer off by one in at most 58% of 100 test problems; the likelihood PRM does in all.

The build evaluates on the test split (policy samples and correct-vs-corrupted pairs) and
saves a plain HF directory with card.json and README.md.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import random
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from transformers import PreTrainedModel

from burnish.errors import ConfigError
from burnish.eval.evaluate import evaluate
from burnish.eval.generate import generate_chat
from burnish.io import check_output_dir
from burnish.models.io import load_model, save_model
from burnish.models.zoo import ZOO_DIR, resolve_model
from burnish.scaling.reward import (
    HFProcessRewardModel,
    LikelihoodProcessRewardModel,
    SeparatorRewardModel,
    answer_logprob_sums,
    answer_start,
    prm_input_ids,
)
from burnish.tasks import get_task
from burnish.train.zoo import finetune_on_tasks

__all__ = ["PRMSpec", "build_arith_prm", "label_solutions"]


@dataclass(frozen=True)
class PRMSpec:
    """How ``arith-prm`` is made (recorded on its card)."""

    name: str = "arith-prm"
    description: str = (
        "Process reward model for arith_chain, likelihood kind: `arith-policy` fine-tuned on "
        "gold solutions into a better calculator, then fitted on step-checker labels of the "
        "policy's own sampled solutions, gold solutions and minimally corrupted copies of "
        "them, so that sigmoid(beta * answer log-likelihood so far + bias) is the probability "
        "that every step so far is right."
    )
    tasks: tuple[str, ...] = ("arith_chain",)
    parent: str = "arith-policy"
    prompts: int = 3000
    samples_per_task: int = 2  # sampled solutions per train prompt
    corruptions: int = 3  # corrupted copies of the gold solution per train prompt
    temperature: float = 1.0
    steps: int = 300
    batch: int = 64
    lr: float = 1e-4
    warmup: int = 30
    dense: float = 0.0  # weight of the per-character auxiliary labels (0: separators only)
    seed: int = 0
    hidden_size: int = 128
    num_layers: int = 4
    extra_layers: int = 0  # fresh decoder layers stacked on the policy's (start as identity)
    untie: bool = False  # own lm_head, so training the '+'/'-' head leaves the operators alone
    freeze_policy: bool = False  # train only the extra layers, final norm and lm_head
    separator: str = "\n"
    good: str = "+"
    bad: str = "-"
    # kind "likelihood": score = sigmoid(beta * answer log-likelihood so far + bias)
    kind: str = "likelihood"
    trunk_steps: int = 1000  # SFT steps on gold solutions before the PRM fit (likelihood kind)
    trunk_samples: int = 60_000
    trunk_lr: float = 1e-3
    head_lr: float = 0.05  # beta and bias (likelihood kind)
    init_bias: float = 0.0


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


def grow_model(model: PreTrainedModel, extra_layers: int, untie: bool) -> PreTrainedModel:
    """The policy with ``extra_layers`` fresh decoder layers on top, optionally with its own
    (untied) ``lm_head``; a plain HF model of the same class.

    The new layers' output projections (attention ``o_proj``, MLP ``down_proj``) start at zero,
    so each new layer is the identity on the residual stream and the grown model computes
    exactly the policy's logits before training. A deeper PRM has room to compare a digit the
    policy predicted (known only after the policy's last layer) with the digit written.
    """
    if extra_layers == 0 and not untie:
        return model
    config = copy.deepcopy(model.config)
    config.num_hidden_layers += extra_layers
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = list(config.layer_types) + [config.layer_types[-1]] * extra_layers
    if untie:
        config.tie_word_embeddings = False
    with torch.random.fork_rng():
        torch.manual_seed(0)
        grown = type(model)(config)
    state = dict(model.state_dict())
    if untie:
        state["lm_head.weight"] = model.get_output_embeddings().weight.detach().clone()
    _, unexpected = grown.load_state_dict(state, strict=False)
    if unexpected:
        raise RuntimeError(f"unexpected weights when growing the PRM: {unexpected}")
    layers = grown.model.layers
    for layer in list(layers)[len(layers) - extra_layers :]:
        torch.nn.init.zeros_(layer.self_attn.o_proj.weight)
        torch.nn.init.zeros_(layer.mlp.down_proj.weight)
    return grown


def _pad(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids [B, T] and attention mask [B, T]."""
    ids = torch.full((len(seqs), max(len(q) for q in seqs)), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, seq in enumerate(seqs):
        ids[b, : len(seq)] = torch.tensor(seq)
        mask[b, : len(seq)] = 1
    return ids, mask


def _lr_scale(step: int, spec: PRMSpec) -> float:
    """Linear warmup over ``spec.warmup`` steps, then cosine decay to 5% over ``spec.steps``."""
    warm = min(1.0, (step + 1) / spec.warmup)
    return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / spec.steps)))


def _class_weights(labels: list[list[bool]], log=print) -> tuple[float, float]:
    """(good, bad) loss weights that make both classes weigh the same in total."""
    n_good = sum(sum(lab) for lab in labels)
    n_bad = sum(len(lab) for lab in labels) - n_good
    if n_good == 0 or n_bad == 0:
        raise ValueError(f"PRM training needs good and bad steps, got {n_good} / {n_bad}")
    log(f"{n_good} good / {n_bad} bad train steps")
    total = n_good + n_bad
    return 0.5 * total / n_good, 0.5 * total / n_bad


def _loss(model, batch, label_ids, pad, weight=None, dense=0.0):
    ids, mask = _pad([e[0] for e in batch], pad)
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


def _prm_metrics(prm: SeparatorRewardModel, rows) -> dict:
    """Step-level accuracy at threshold 0.5 and final-step accuracy on held-out samples."""
    right = total = final_right = 0
    finals: dict[bool, list[float]] = {True: [], False: []}
    for p, steps, labels in rows:
        scores = prm.score_texts(p, [steps])[0]
        right += sum((s > 0.5) == lab for s, lab in zip(scores, labels, strict=True))
        total += len(labels)
        final_right += (scores[-1] > 0.5) == labels[-1]
        finals[labels[-1]].append(scores[-1])
    pairs = [(a > b) + 0.5 * (a == b) for a in finals[True] for b in finals[False]]
    return {
        "step_accuracy": round(right / total, 4),
        "final_accuracy": round(final_right / len(rows), 4),
        # P(a right solution's final score > a wrong one's): ranking quality for best-of-N
        "final_auc": round(sum(pairs) / len(pairs), 4) if pairs else None,
        "solutions": len(rows),
        "steps": total,
    }


def pair_metrics(prm: SeparatorRewardModel, task, prompts, seed: int = 0) -> dict:
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


def train_prm(spec: PRMSpec, rows, tok, task, log=print, t0: float | None = None):
    """The PRM trained on labelled ``rows`` (prompt, steps, labels); returns (model, final loss).

    Starts from the parent policy (after ``spec.trunk_steps`` of SFT on gold solutions, see
    :func:`train_trunk`), grown by ``spec.extra_layers`` and untied if asked (see
    :func:`grow_model`)."""
    t0 = time.time() if t0 is None else t0
    torch.manual_seed(spec.seed)
    model = grow_model(train_trunk(spec, tok, log), spec.extra_layers, spec.untie)
    if spec.freeze_policy:
        for name, param in model.named_parameters():
            keep = name.startswith(("lm_head", "model.norm")) or any(
                name.startswith(f"model.layers.{i}.")
                for i in range(model.config.num_hidden_layers - spec.extra_layers, 10_000)
            )
            param.requires_grad_(keep)
    label_ids = [tok.convert_tokens_to_ids(tok.tokenize(t))[0] for t in (spec.good, spec.bad)]
    data = _encode(tok, rows, spec, task)
    weight = torch.tensor(_class_weights([lab for *_, lab in rows], log))  # class-balanced loss
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=spec.lr, weight_decay=0.0
    )
    rng = random.Random(spec.seed)
    model.train()
    loss = torch.tensor(0.0)
    for step in range(spec.steps):
        for g in opt.param_groups:
            g["lr"] = spec.lr * _lr_scale(step, spec)
        batch = rng.sample(data, spec.batch)
        loss = _loss(model, batch, label_ids, tok.pad_token_id, weight, spec.dense)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == spec.steps - 1:
            log(f"step {step} loss {loss.item():.4f} ({time.time() - t0:.0f}s)")
    model.eval()
    return model, float(loss.item())


def train_trunk(spec: PRMSpec, tok, log=print) -> PreTrainedModel:
    """The PRM's starting language model: the parent fine-tuned on gold solutions.

    A verifier must calculate better than the policy it checks; ``trunk_steps`` more steps of
    SFT on fresh gold ``arith_chain`` solutions (seed 1, disjoint from the parent's data
    order) make one. Returns the model; ``trunk_steps == 0`` returns the parent.
    """
    model, _ = load_model(resolve_model(spec.parent))
    if spec.trunk_steps == 0:
        return model
    loss = finetune_on_tasks(
        model,
        tok,
        f"{spec.name}-trunk",
        list(spec.tasks),
        spec.trunk_samples,
        steps=spec.trunk_steps,
        batch=128,
        lr=spec.trunk_lr,
        seed=spec.seed,
        data_seed=spec.seed + 1,
    )
    log(f"trunk: {spec.trunk_steps} SFT steps on gold solutions, loss {loss:.4f}")
    return model


def _likelihood_batch(tok, batch):
    """Right-padded ids [B, T], mask, answer starts [B], separator rows/cols, labels."""
    ids, mask = _pad([e[0] for e in batch], tok.pad_token_id)
    starts = torch.tensor([e[2] for e in batch])
    rows = torch.tensor([b for b, e in enumerate(batch) for _ in e[1]])
    cols = torch.tensor([p for e in batch for p in e[1]])
    target = torch.tensor([float(good) for e in batch for good in e[3]])
    return ids, mask, starts, rows, cols, target


def train_likelihood_prm(spec: PRMSpec, rows, tok, log=print, t0: float | None = None):
    """Fit the likelihood PRM on labelled ``rows``; returns (model, beta, bias, final loss).

    Score after step i = sigmoid(beta * L_i + bias), L_i the answer's summed token
    log-probability through step i (:func:`~burnish.scaling.reward.answer_logprob_sums`).
    The trunk (:func:`train_trunk`), ``log beta`` and ``bias`` are trained together with
    class-balanced binary cross-entropy against the step-checker labels; the trunk's
    learning rate is small (``lr``) so it stays a calculator, the two scalars' is ``head_lr``.
    """
    t0 = time.time() if t0 is None else t0
    torch.manual_seed(spec.seed)
    model = train_trunk(spec, tok, log)
    data = []
    for p, steps, labels in rows:
        ids, pos = prm_input_ids(tok, p, steps, spec.separator)
        data.append((ids, pos, answer_start(tok, p), labels))
    w_good, w_bad = _class_weights([lab for *_, lab in data], log)
    log_beta = torch.nn.Parameter(torch.tensor(0.0))
    bias = torch.nn.Parameter(torch.tensor(spec.init_bias))
    opt = torch.optim.AdamW(
        [
            {"params": list(model.parameters()), "lr": spec.lr},
            {"params": [log_beta, bias], "lr": spec.head_lr},
        ],
        weight_decay=0.0,
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    rng = random.Random(spec.seed)
    model.train()
    loss = torch.tensor(0.0)
    for step in range(spec.steps):
        for g, lr in zip(opt.param_groups, base_lrs, strict=True):
            g["lr"] = lr * _lr_scale(step, spec)
        ids, mask, starts, r, c, target = _likelihood_batch(tok, rng.sample(data, spec.batch))
        logits = model(input_ids=ids, attention_mask=mask).logits  # [B, T, V]
        z = log_beta.exp() * answer_logprob_sums(logits, ids, starts)[r, c] + bias  # [steps]
        weight = torch.where(target > 0.5, w_good, w_bad)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, target, weight=weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == spec.steps - 1:
            log(
                f"step {step} loss {loss.item():.4f} beta {log_beta.exp().item():.3f} "
                f"bias {bias.item():.2f} ({time.time() - t0:.0f}s)"
            )
    model.eval()
    return model, log_beta.exp().item(), bias.item(), float(loss.item())


def build_arith_prm(
    spec: PRMSpec = PRMSpec(), out_root: Path = ZOO_DIR, log=print, overwrite: bool = False
) -> dict:
    """Sample, label, train, evaluate and save the PRM; returns its card.

    An existing ``out_root/spec.name`` folder is refused unless ``overwrite``.
    """
    check_output_dir(Path(out_root) / spec.name, overwrite=overwrite, what="PRM model folder")
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
    if spec.kind == "likelihood":
        model, beta, bias, loss = train_likelihood_prm(spec, rows, tok, log, t0)
        prm: SeparatorRewardModel = LikelihoodProcessRewardModel(
            model, tok, spec.separator, beta=beta, bias=bias
        )
        prm_opts = {"kind": "likelihood", "separator": spec.separator, "beta": beta, "bias": bias}
    elif spec.kind == "two_class":
        model, loss = train_prm(spec, rows, tok, task, log, t0)
        prm = HFProcessRewardModel(model, tok, spec.separator, spec.good, spec.bad)
        prm_opts = {"kind": "two_class", "separator": spec.separator}
        prm_opts |= {"good": spec.good, "bad": spec.bad}
    else:
        raise ConfigError(f"unknown PRM kind {spec.kind!r}; use 'likelihood' or 'two_class'")
    acc = evaluate(model, tok, list(spec.tasks), 64, batch_size=64, seed=0)
    card = {
        "name": spec.name,
        "description": spec.description,
        "architecture": model.config.architectures[0],
        "parameters": sum(p.numel() for p in model.parameters()),
        "spec": asdict(spec),
        "final_loss": loss,
        "build_seconds": round(time.time() - t0, 1),
        "build_machine": f"{platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "check_sample": {"n": 64, "split": "test", "seed": 0, "decoding": "greedy"},
        # Greedy accuracy of the PRM read as a generator: only documents what decoding it
        # does (both fits trade generation for verification).
        "accuracy": {t: r.accuracy for t, r in acc.items()},
        "prm": prm_opts,
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


def _training_lines(card: dict) -> list[str]:
    s, prm = card["spec"], card["prm"]
    schedule = (
        f"{s['steps']} steps x {s['batch']} solutions, lr {s['lr']} ({s['warmup']}-step "
        f"warmup, cosine decay)"
    )
    trunk = []
    if s["trunk_steps"]:
        trunk = [
            f"- trunk: {s['parent']} + {s['trunk_steps']} SFT steps (batch 128, lr "
            f"{s['trunk_lr']}) on {s['trunk_samples']} fresh gold solutions"
        ]
    usage = f"- usage: `burnish.scaling.load_prm('{card['name']}')` (card.json key `prm`); "
    if prm["kind"] == "likelihood":
        return [
            *trunk,
            f"- fit: {schedule}; trunk, beta and bias trained with class-balanced binary "
            f"cross-entropy of sigmoid(beta * L + bias) against the step labels, L = sum of "
            f"the answer's token log-probabilities through the step's newline; final loss "
            f"{card['final_loss']:.4f}, beta {prm['beta']:.4f}, bias {prm['bias']:.4f}",
            usage + "score after a step = sigmoid(beta * L + bias)",
        ]
    return [
        *trunk,
        f"- training: {schedule}, class-balanced two-class cross-entropy on the "
        f"'{s['good']}'/'{s['bad']}' logits at each newline; final loss "
        f"{card['final_loss']:.4f}",
        usage + "score of a step = softmax('+', '-' logits)[0] at the newline after it",
    ]


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
            *_training_lines(card),
            f"- build time: {card['build_seconds']} s on {card['build_machine']}",
            "",
            f"## Held-out quality ({e['solutions']} policy solutions, {e['steps']} steps)",
            "",
            f"- step accuracy (score > 0.5 vs checker label): {e['step_accuracy']:.3f}",
            f"- final-step accuracy (is the whole solution right): {e['final_accuracy']:.3f}",
            f"- final-score AUC (a right solution scores above a wrong one): {e['final_auc']:.3f}",
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


TWO_CLASS_DESCRIPTION = (
    "Process reward model for arith_chain, two-class kind (Qwen2.5-Math-PRM layout): logits "
    "of '+'/'-' at each newline step separator, trained on step-checker labels of the "
    "policy's own sampled solutions, gold solutions and minimally corrupted copies of them."
)


def main(argv: list[str] | None = None) -> None:
    """``python -m burnish.scaling.build_prm [OUT] [--kind two_class] [--steps N] ...``"""
    import argparse

    d = PRMSpec()
    ap = argparse.ArgumentParser(
        prog="python -m burnish.scaling.build_prm",
        description="Build a PRM for arith-policy into OUT/NAME (default: the zoo, arith-prm).",
    )
    ap.add_argument("out", nargs="?", type=Path, default=ZOO_DIR, help="output root folder")
    ap.add_argument("--name", default=d.name, help="model folder name")
    ap.add_argument("--kind", choices=("likelihood", "two_class"), default=d.kind)
    ap.add_argument("--steps", type=int, default=d.steps, help="PRM fit steps")
    ap.add_argument("--lr", type=float, default=d.lr, help="PRM fit learning rate")
    ap.add_argument("--trunk-steps", type=int, default=d.trunk_steps, help="SFT on gold first")
    ap.add_argument("--extra-layers", type=int, default=d.extra_layers, help="two_class only")
    ap.add_argument("--untie", action="store_true", help="two_class: own lm_head")
    ap.add_argument("--freeze-policy", action="store_true", help="two_class: train new parts")
    ap.add_argument("--dense", type=float, default=d.dense, help="two_class: per-char labels")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing OUT/NAME")
    args = ap.parse_args(argv)
    spec = replace(
        d,
        name=args.name,
        kind=args.kind,
        steps=args.steps,
        lr=args.lr,
        trunk_steps=args.trunk_steps,
        extra_layers=args.extra_layers,
        untie=args.untie,
        freeze_policy=args.freeze_policy,
        dense=args.dense,
        description=TWO_CLASS_DESCRIPTION if args.kind == "two_class" else d.description,
    )
    print(json.dumps(build_arith_prm(spec, out_root=args.out, overwrite=args.overwrite), indent=2))


if __name__ == "__main__":
    main()
