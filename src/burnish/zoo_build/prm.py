"""Build a zoo PRM: label solutions, fit the kind's head, evaluate on held-out data, save.

Data: for every train prompt the gold solution, ``corruptions`` minimally wrong copies of it
(one step's result nudged and the rest carried forward, or only ``Answer:``;
:func:`burnish.tasks.arith_chain.corrupt_solution`) and ``samples_per_task`` policy samples
at temperature 1, every step labelled by the task's exact step checker. Fits: see
:mod:`burnish.zoo_build.prm_fit` (``likelihood`` ships as ``arith-prm``; the two-class
Qwen2.5-Math-PRM layout learned little on this zoo in nine configurations tried, see the
README). The card records the held-out quality: step and final accuracy, final-score AUC,
and how often gold beats minimally corrupted copies.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict
from pathlib import Path

from burnish.errors import ConfigError
from burnish.eval.evaluate import evaluate
from burnish.io import check_output_dir
from burnish.models.io import load_model
from burnish.models.zoo import ZOO_DIR, resolve_model
from burnish.scaling.reward import SeparatorRewardModel
from burnish.tasks import Task, get_task
from burnish.tasks.arith_chain import corrupt_solution
from burnish.zoo_build.cards import (
    PRM_DESCRIPTIONS,
    build_facts,
    model_facts,
    render_prm_card,
    save_with_card,
)
from burnish.zoo_build.prm_data import Row, contrastive_rows, sampled_rows
from burnish.zoo_build.prm_fit import PRM_FITS
from burnish.zoo_build.specs import PRMSpec

__all__ = ["build_arith_prm", "pair_metrics", "prm_metrics"]


def prm_metrics(prm: SeparatorRewardModel, rows: list[Row]) -> dict:
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


def pair_metrics(prm: SeparatorRewardModel, task: Task, prompts: list[str], seed: int = 0) -> dict:
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


def build_arith_prm(
    spec: PRMSpec = PRMSpec(), out_root: Path = ZOO_DIR, log=print, overwrite: bool = False
) -> dict:
    """Sample, label, train, evaluate and save the PRM; returns its card.

    An existing ``out_root/spec.name`` folder is refused unless ``overwrite``.
    """
    if spec.kind not in PRM_FITS:
        raise ConfigError(f"unknown PRM kind {spec.kind!r}; choose one of {', '.join(PRM_FITS)}")
    check_output_dir(Path(out_root) / spec.name, overwrite=overwrite, what="PRM model folder")
    t0 = time.time()  # randomness: seeded samples and the fits' own random.Random(spec.seed)
    policy, tok = load_model(resolve_model(spec.parent))
    task = get_task(spec.tasks[0])
    prompts = [e.prompt for e in task.generate(spec.prompts, "train", seed=spec.seed)]
    rows = sampled_rows(policy, tok, task, prompts, spec.samples_per_task, spec.temperature, 1)
    rows += contrastive_rows(task, prompts, spec.corruptions, spec.seed)
    test_prompts = [e.prompt for e in task.generate(200, "test", seed=7)]
    test_rows = sampled_rows(policy, tok, task, test_prompts, 4, spec.temperature, 10_000)
    log(f"{len(rows)} train / {len(test_rows)} test solutions in {time.time() - t0:.0f}s")
    prm, loss = PRM_FITS[spec.kind](spec, rows, tok, task, log, t0)
    model = prm.model
    acc = evaluate(model, tok, list(spec.tasks), 64, batch_size=64, seed=0)
    card = {
        "name": spec.name,
        "description": PRM_DESCRIPTIONS[spec.kind],
        **model_facts(model),
        "spec": asdict(spec),
        "final_loss": loss,
        **build_facts(t0),
        "check_sample": {"n": 64, "split": "test", "seed": 0, "decoding": "greedy"},
        # Greedy accuracy of the PRM read as a generator: only documents what decoding it
        # does (both fits trade generation for verification).
        "accuracy": {t: r.accuracy for t, r in acc.items()},
        "prm": prm.card_options(),
        "prm_eval": {
            "split": "test",
            "samples_per_prompt": 4,
            **prm_metrics(prm, test_rows),
            "gold_beats_corrupted": pair_metrics(prm, task, test_prompts),
        },
    }
    card.update(build_facts(t0))  # the held-out evaluation above took time too
    save_with_card(model, tok, out_root / spec.name, card, render_prm_card)
    return card
