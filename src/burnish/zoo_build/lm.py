"""Build one zoo language model: init or parent, SFT on fresh task examples, card."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from burnish.errors import ConfigError
from burnish.eval.evaluate import evaluate
from burnish.io import check_output_dir
from burnish.models.configs import tiny_config
from burnish.models.io import load_model, model_from_config
from burnish.models.tokenizer import build_char_tokenizer
from burnish.models.zoo import ZOO_DIR
from burnish.tasks import list_tasks, mixture
from burnish.train.finetune import examples_config
from burnish.train.sft import run_sft
from burnish.zoo_build.cards import build_facts, model_facts, render_lm_card, save_with_card
from burnish.zoo_build.specs import CHECK_SAMPLE, ZOO_RECOMMENDED, ZooSpec

__all__ = ["build_zoo_model", "finetune_zoo_model", "init_model"]


def init_model(spec: ZooSpec, out_root: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The starting point of a zoo model: its parent (built first), or a seeded random init."""
    if spec.parent is not None:
        parent = out_root / spec.parent
        if not (parent / "config.json").is_file():
            raise ConfigError(f"zoo model {spec.name!r} needs {spec.parent!r} built first")
        return load_model(parent)
    tok = build_char_tokenizer()
    cfg = tiny_config(
        spec.arch,
        len(tok),
        spec.hidden_size,
        spec.num_layers,
        spec.num_heads,
        spec.num_kv_heads,
        intermediate_size=2 * spec.hidden_size,
    )
    return model_from_config(cfg, seed=spec.seed), tok


def finetune_zoo_model(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    name: str,
    tasks: list[str],
    samples_per_task: int,
    *,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    data_seed: int,
    progress: bool = False,
) -> float:
    """SFT ``model`` in place on fresh ``train`` examples of ``tasks``; the final loss."""
    rows = mixture(tasks, samples_per_task, "train", data_seed)
    return finetune_on_rows(model, tok, name, rows, steps=steps, batch=batch, lr=lr, seed=seed,
                            progress=progress)  # fmt: skip


def finetune_on_rows(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    name: str,
    rows: Iterable,
    *,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    max_seq_len: int = 128,
    progress: bool = False,
) -> float:
    """SFT ``model`` in place on ``rows`` (examples or chat-row dicts; burnish's recipe, CPU,
    nothing kept on disk); returns the final loss."""
    with tempfile.TemporaryDirectory(prefix=f"zoo-{name}-") as tmp:
        cfg = examples_config(
            rows,
            tmp,
            model=name,
            max_seq_len=max_seq_len,
            effective_batch_size=batch,
            lr=lr,
            max_steps=steps,
            seed=seed,
            save_epoch_end=False,
            save_state=False,
            device="cpu",
            cache_dir=str(Path(tmp) / "cache"),
        )
        return run_sft(cfg, progress=progress, model=model, tokenizer=tok).final_loss


def build_zoo_model(
    spec: ZooSpec, out_root: Path = ZOO_DIR, progress: bool = True, overwrite: bool = False
) -> dict:
    """Train, evaluate and save one zoo model; returns its card.

    An existing model folder is refused unless ``overwrite``.
    """
    check_output_dir(Path(out_root) / spec.name, overwrite=overwrite, what="zoo model folder")
    t0 = time.time()
    model, tok = init_model(spec, out_root)
    final_loss = finetune_zoo_model(
        model,
        tok,
        spec.name,
        list(spec.tasks),
        spec.samples_per_task,
        steps=spec.steps,
        batch=spec.batch,
        lr=spec.lr,
        seed=spec.seed,
        data_seed=spec.seed,
        progress=progress,
    )
    model.eval()
    results = evaluate(model, tok, list_tasks(), CHECK_SAMPLE, progress=progress)
    accuracy = {k: v.accuracy for k, v in results.items()}
    card = {
        "name": spec.name,
        "description": spec.description,
        **model_facts(model),
        "spec": asdict(spec),
        "final_loss": final_loss,
        **build_facts(t0),
        "check_sample": {"n": CHECK_SAMPLE, "split": "test", "seed": 0, "decoding": "greedy"},
        "accuracy": accuracy,
        "recommended": dict(ZOO_RECOMMENDED),
    }
    if spec.best_of:
        sampled = evaluate(
            model, tok, list(spec.tasks), 200, num_samples=spec.best_of, temperature=1.0, seed=1
        )
        card["best_of"] = {
            t: {
                "n_problems": r.n_problems,
                "samples": spec.best_of,
                "greedy": evaluate(model, tok, [t], 200)[t].accuracy,
                "mean_sample": r.accuracy,
                "pass_at_n": r.pass_at_n,
                "majority_at_n": r.majority_at_n,
            }
            for t, r in sampled.items()
        }
    save_with_card(model, tok, out_root / spec.name, card, render_lm_card)
    return card
