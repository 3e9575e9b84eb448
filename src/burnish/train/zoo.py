"""The zoo recipe: rebuild the shipped tiny checkpoints from seed with burnish's own SFT.

Each zoo model is described by a :class:`ZooSpec` (architecture, parent, tasks, steps). A
build trains it, evaluates it on every task's held-out split, and writes a plain HF directory
with a model card (``README.md`` for people, ``card.json`` for code and tests).
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from burnish.errors import ConfigError
from burnish.eval.evaluate import evaluate
from burnish.io import check_output_dir, write_jsonl
from burnish.models.configs import tiny_config
from burnish.models.io import load_model, model_from_config, save_model
from burnish.models.tokenizer import build_char_tokenizer
from burnish.models.zoo import ZOO_DIR
from burnish.tasks import list_tasks, mixture
from burnish.train.config import SFTConfig
from burnish.train.sft import run_sft

__all__ = [
    "CHECK_SAMPLE",
    "ZOO_SPECS",
    "ZooSpec",
    "build_zoo",
    "build_zoo_model",
    "finetune_on_tasks",
]

# The held-out sample every card records and the zoo test re-scores: the first
# CHECK_SAMPLE test problems of each task at seed 0, greedy, batch 64.
CHECK_SAMPLE = 64


@dataclass(frozen=True)
class ZooSpec:
    """How one zoo model is made."""

    name: str
    description: str
    tasks: tuple[str, ...]
    steps: int
    parent: str | None = None  # fine-tune of this zoo model (built first)
    arch: str = "llama"
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    samples_per_task: int = 20_000
    batch: int = 128
    lr: float = 2e-3
    seed: int = 0
    best_of: int = 0  # also record pass@best_of with sampling (temperature 1)
    extra: dict = field(default_factory=dict)


# Fine-tuning hyperparameters every zoo model's card recommends (used by `burnish sft`,
# `osft` and `continual` when the user sets none): the rate the zoo's own fine-tunes and the
# continual benchmark use; the SFT default (2e-5, for 1-8B models) barely moves these models.
ZOO_RECOMMENDED = {"lr": 1e-3}


PRM_NAME = "arith-prm"

ZOO_SPECS: dict[str, ZooSpec] = {
    s.name: s
    for s in [
        ZooSpec(
            "base",
            "Llama-architecture base model trained on a mixture of every task.",
            tasks=tuple(list_tasks()),
            steps=1200,
            samples_per_task=12_000,
        ),
        ZooSpec(
            "ft-addition",
            "`base` fine-tuned on two-digit addition.",
            parent="base",
            tasks=("addition",),
            steps=300,
            lr=1e-3,
        ),
        ZooSpec(
            "ft-sorting",
            "`base` fine-tuned on sorting digits.",
            parent="base",
            tasks=("sorting",),
            steps=300,
            lr=1e-3,
        ),
        ZooSpec(
            "ft-reversal",
            "`base` fine-tuned on string reversal.",
            parent="base",
            tasks=("reversal",),
            steps=300,
            lr=1e-3,
        ),
        ZooSpec(
            "arith-policy",
            "`base` fine-tuned briefly on the multi-step arithmetic chain: "
            "a policy whose best-of-16 clearly beats its greedy answer.",
            parent="base",
            tasks=("arith_chain",),
            steps=150,
            lr=1e-3,
            best_of=16,
        ),
        ZooSpec(
            "qwen2-mix",
            "Qwen2-architecture model trained on the task mixture (a second "
            "architecture, so nothing silently depends on Llama).",
            arch="qwen2",
            tasks=tuple(list_tasks()),
            steps=600,
            samples_per_task=6_000,
            hidden_size=96,
            num_layers=3,
            num_heads=4,
            num_kv_heads=2,
        ),
    ]
}


def _init_model(spec: ZooSpec, out_root: Path):
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


def finetune_on_tasks(
    model,
    tok,
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
    """SFT ``model`` in place on fresh ``train`` examples of ``tasks`` (burnish's recipe, CPU,
    nothing kept on disk); returns the final loss."""
    with tempfile.TemporaryDirectory(prefix=f"zoo-{name}-") as tmp:
        data = Path(tmp) / "train.jsonl"
        examples = mixture(tasks, samples_per_task, "train", data_seed)
        write_jsonl(data, (e.to_messages() for e in examples))
        cfg = SFTConfig(
            model=name,
            data=str(data),
            output_dir=str(Path(tmp) / "run"),
            max_seq_len=128,
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
    model, tok = _init_model(spec, out_root)
    final_loss = finetune_on_tasks(
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
        "architecture": model.config.architectures[0]
        if model.config.architectures
        else type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "spec": asdict(spec),
        "final_loss": final_loss,
        "build_seconds": round(time.time() - t0, 1),
        "build_machine": f"{platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
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
    save_model(
        model,
        tok,
        out_root / spec.name,
        extra_files={
            "card.json": json.dumps(card, indent=2) + "\n",
            "README.md": render_card(card),
        },
    )
    return card


def render_card(card: dict) -> str:
    """A Markdown model card."""
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


def build_zoo(
    names: list[str] | None = None,
    out_root: Path = ZOO_DIR,
    progress: bool = True,
    overwrite: bool = False,
) -> list[dict]:
    """Build the named zoo models (default: all), parents first; ``arith-prm`` (built by
    :mod:`burnish.scaling.build_prm` from ``arith-policy``) comes last.

    Existing model folders under ``out_root`` (the shipped zoo included) are refused, all
    checked before anything is trained, unless ``overwrite``.
    """
    known = [*ZOO_SPECS, PRM_NAME]
    names = names or known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown zoo model(s) {unknown}; choose from {known}")
    for name in names:
        check_output_dir(Path(out_root) / name, overwrite=overwrite, what="zoo model folder")
    order = [n for n in ZOO_SPECS if n in names]  # ZOO_SPECS lists parents first
    cards = [build_zoo_model(ZOO_SPECS[n], out_root, progress, overwrite) for n in order]
    if PRM_NAME in names:
        from burnish.scaling.build_prm import PRMSpec, build_arith_prm

        spec = PRMSpec()
        parent = Path(out_root) / spec.parent
        if not (parent / "config.json").is_file():
            raise ConfigError(f"zoo model {PRM_NAME!r} needs {spec.parent!r} built first")
        if Path(out_root).resolve() != ZOO_DIR.resolve():
            spec = replace(spec, parent=str(parent))
        log = print if progress else (lambda message: None)
        cards.append(build_arith_prm(spec, Path(out_root), log=log, overwrite=overwrite))
    return cards
