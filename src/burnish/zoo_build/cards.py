"""Model cards of the zoo, generated from what was built (card.json -> README.md)."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from burnish.models.io import save_model
from burnish.zoo_build.specs import CHECK_SAMPLE

__all__ = [
    "PRM_DESCRIPTIONS",
    "build_facts",
    "model_facts",
    "render_lm_card",
    "render_prm_card",
    "save_with_card",
]


def model_facts(model: PreTrainedModel) -> dict:
    """What every card says about the model itself, read from it."""
    archs = model.config.architectures
    return {
        "architecture": archs[0] if archs else type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "hidden_size": model.config.hidden_size,
        "num_layers": model.config.num_hidden_layers,
    }


def build_facts(t0: float) -> dict:
    """How long the build took (since ``t0``, a time.time()) and on what."""
    return {
        "build_seconds": round(time.time() - t0, 1),
        "build_machine": f"{platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
    }


def save_with_card(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    path: Path,
    card: dict,
    render: Callable[[dict], str],
) -> None:
    """An HF directory with ``card.json`` and its Markdown rendering as ``README.md``."""
    files = {"card.json": json.dumps(card, indent=2) + "\n", "README.md": render(card)}
    save_model(model, tok, path, extra_files=files)


# What each kind of zoo PRM is, for its card.
PRM_DESCRIPTIONS = {
    "likelihood": (
        "Process reward model for arith_chain, likelihood kind: `arith-policy` fine-tuned on "
        "gold solutions into a better calculator, then fitted on step-checker labels of the "
        "policy's own sampled solutions, gold solutions and minimally corrupted copies of "
        "them, so that sigmoid(beta * answer log-likelihood so far + bias) is the probability "
        "that every step so far is right."
    ),
    "two_class": (
        "Process reward model for arith_chain, two-class kind (Qwen2.5-Math-PRM layout): "
        "logits of '+'/'-' at each newline step separator, trained on step-checker labels of "
        "the policy's own sampled solutions, gold solutions and minimally corrupted copies of "
        "them."
    ),
}


def render_lm_card(card: dict) -> str:
    """The Markdown card of a zoo language model."""
    spec = card["spec"]
    lines = [
        f"# {card['name']}",
        "",
        card["description"],
        "",
        f"- architecture: {card['architecture']} ({card['parameters']:,} parameters; hidden "
        f"{spec['hidden_size']}, {spec['num_layers']} layers)",
        f"- parent: {spec['parent'] or '(trained from random init)'}",
        f"- data: tasks {', '.join(spec['tasks'])}; {spec['samples_per_task']} train samples "
        f"per task (seed {spec['seed']})",
        f"- training: {spec['steps']} steps x {spec['batch']} samples, lr {spec['lr']} "
        f"(burnish SFT recipe); final loss {card['final_loss']:.4f}",
        f"- build time: {card['build_seconds']} s on {card['build_machine']}",
        "",
        f"## Greedy accuracy ({CHECK_SAMPLE} held-out test problems per task, seed 0)",
        "",
        "| task | accuracy |",
        "|---|---|",
        *[f"| {t} | {a:.3f} |" for t, a in card["accuracy"].items()],
    ]
    for task, b in card.get("best_of", {}).items():
        lines += [
            "",
            f"## Room for inference-time scaling on {task} ({b['n_problems']} "
            "problems, temperature 1.0)",
            "",
            f"- greedy: {b['greedy']:.3f}",
            f"- mean single sample: {b['mean_sample']:.3f}",
            f"- best of {b['samples']} (any correct): {b['pass_at_n']:.3f}",
            f"- majority of {b['samples']}: {b['majority_at_n']:.3f}",
        ]
    return "\n".join(lines) + "\n"


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


def render_prm_card(card: dict) -> str:
    """The Markdown card of a zoo PRM (from its card.json)."""
    s, e = card["spec"], card["prm_eval"]
    pairs = e["gold_beats_corrupted"]
    return "\n".join(
        [
            f"# {card['name']}",
            "",
            PRM_DESCRIPTIONS[card["prm"]["kind"]],
            "",
            f"- architecture: {card['architecture']} ({card['parameters']:,} parameters; "
            f"hidden {card['hidden_size']}, {card['num_layers']} layers); parent {s['parent']}",
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
