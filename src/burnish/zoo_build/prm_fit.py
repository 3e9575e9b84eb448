"""PRM fits: a registry of kinds, each one readable training loop over labelled rows.

``PRM_FITS[kind](spec, rows, tok, task, log, t0) -> (reward model, final loss)``; the reward
model (a :data:`burnish.scaling.reward.PRM_KINDS` class) writes its own card section. Both
start from a "trunk": the parent policy after ``spec.trunk_steps`` of SFT on gold solutions.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable

import torch
from transformers import PreTrainedModel

from burnish.models.io import load_model
from burnish.models.zoo import resolve_model
from burnish.scaling.reward import (
    HFProcessRewardModel,
    LikelihoodProcessRewardModel,
    SeparatorRewardModel,
    answer_logprob_sums,
    answer_start,
    prm_input_ids,
)
from burnish.seeding import seeded
from burnish.tasks import Task
from burnish.zoo_build.lm import finetune_zoo_model
from burnish.zoo_build.prm_data import Row, encode_two_class
from burnish.zoo_build.specs import PRMSpec

__all__ = ["PRM_FITS", "fit_likelihood", "fit_two_class", "grow_model", "train_trunk"]


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
    with seeded(0):  # the new layers' init; their output projections are zeroed below
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


def fit_two_class(
    spec: PRMSpec, rows: list[Row], tok, task: Task, log=print, t0: float | None = None
):
    """The two-class PRM trained on labelled ``rows``; returns (reward model, final loss).

    Starts from the parent policy (after ``spec.trunk_steps`` of SFT on gold solutions, see
    :func:`train_trunk`), grown by ``spec.extra_layers`` and untied if asked (see
    :func:`grow_model`)."""
    t0 = time.time() if t0 is None else t0
    model = grow_model(train_trunk(spec, tok, log), spec.extra_layers, spec.untie)
    if spec.freeze_policy:
        for name, param in model.named_parameters():
            keep = name.startswith(("lm_head", "model.norm")) or any(
                name.startswith(f"model.layers.{i}.")
                for i in range(model.config.num_hidden_layers - spec.extra_layers, 10_000)
            )
            param.requires_grad_(keep)
    label_ids = [tok.convert_tokens_to_ids(tok.tokenize(t))[0] for t in (spec.good, spec.bad)]
    data = encode_two_class(tok, rows, spec, task)
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
    prm = HFProcessRewardModel(model, tok, spec.separator, spec.good, spec.bad)
    return prm, float(loss.item())


def train_trunk(spec: PRMSpec, tok, log=print) -> PreTrainedModel:
    """The PRM's starting language model: the parent fine-tuned on gold solutions.

    A verifier must calculate better than the policy it checks; ``trunk_steps`` more steps of
    SFT on fresh gold ``arith_chain`` solutions (seed 1, disjoint from the parent's data
    order) make one. Returns the model; ``trunk_steps == 0`` returns the parent.
    """
    model, _ = load_model(resolve_model(spec.parent))
    if spec.trunk_steps == 0:
        return model
    loss = finetune_zoo_model(
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


def fit_likelihood(
    spec: PRMSpec, rows: list[Row], tok, task: Task, log=print, t0: float | None = None
):
    """Fit the likelihood PRM on labelled ``rows``; returns (reward model, final loss).

    Score after step i = sigmoid(beta * L_i + bias), L_i the answer's summed token
    log-probability through step i (:func:`~burnish.scaling.reward.answer_logprob_sums`).
    The trunk (:func:`train_trunk`), ``log beta`` and ``bias`` are trained together with
    class-balanced binary cross-entropy against the step-checker labels; the trunk's
    learning rate is small (``lr``) so it stays a calculator, the two scalars' is ``head_lr``.
    """
    t0 = time.time() if t0 is None else t0
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
    prm = LikelihoodProcessRewardModel(
        model, tok, spec.separator, beta=log_beta.exp().item(), bias=bias.item()
    )
    return prm, float(loss.item())


PRMFit = Callable[..., tuple[SeparatorRewardModel, float]]
PRM_FITS: dict[str, PRMFit] = {
    HFProcessRewardModel.kind: fit_two_class,
    LikelihoodProcessRewardModel.kind: fit_likelihood,
}
