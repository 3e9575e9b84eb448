"""Continual learning: a task sequence, an accuracy matrix, average accuracy and BWT.

Stage i trains task i starting from stage i-1's dense checkpoint (OSFT re-decomposes it, so
what tasks 1..i-1 rely on is frozen), then evaluates every task of the sequence:
a[i][j] = accuracy on task j after training task i. Average accuracy = mean_j a[T][j];
backward transfer BWT = mean_{j<T} (a[T][j] - a[j][j]) (0: no forgetting; negative: forgetting).
A stopped run resumes: finished stages (final model + eval.json) are not redone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from burnish.errors import ConfigError
from burnish.eval.evaluate import evaluate
from burnish.io import (
    atomic_file,
    atomic_write_text,
    check_output_dir,
    remove_owned,
)
from burnish.models.io import load_model
from burnish.models.zoo import resolve_model
from burnish.tasks import Example, get_task
from burnish.train.checkpoint import STATE_DIR
from burnish.train.config import OSFTConfig
from burnish.train.finetune import examples_config
from burnish.train.osft import OSFT
from burnish.train.sft import run_sft

__all__ = ["ContinualResult", "StageTrainer", "backward_transfer", "plot_matrix", "run_continual"]

# (starting model dir, stage config) -> trained model dir. Used for baselines such as LoRA.
StageTrainer = Callable[[str, OSFTConfig], Path]


@dataclass
class ContinualResult:
    tasks: list[str]
    matrix: list[list[float]]  # [stage][task]
    average_accuracy: float
    backward_transfer: float
    initial: list[float]  # accuracy of the starting model on each task
    method: str


def backward_transfer(matrix: list[list[float]]) -> float:
    """mean_{j<T} (a[T][j] - a[j][j]) over a square accuracy matrix."""
    T = len(matrix)
    if T < 2:
        return 0.0
    return sum(matrix[-1][j] - matrix[j][j] for j in range(T - 1)) / (T - 1)


def _stage_config(
    base: dict[str, Any],
    stage: int,
    n_stages: int,
    model: str,
    examples: list[Example],
    work: Path,
) -> OSFTConfig:
    """Stage i's config, training on ``examples`` (written to ``work/train.jsonl``) into
    ``work/run``: the frozen share grows as tasks accumulate (trainable x (1 - i/T))."""
    scale = base.get("trainable_scale", 1.0) * (1 - stage / n_stages)
    options = {**base, "model": model, "trainable_scale": scale}
    return examples_config(examples, work, OSFTConfig, **options)


def _recipe_stage(osft: bool, progress: bool) -> StageTrainer:
    def train(start: str, cfg: OSFTConfig) -> Path:
        m, tok = load_model(start)
        hooks = OSFT(cfg) if osft else None
        # A stage's run folder belongs to this continual run: resume its saved state, or
        # restart a stage that stopped before saving one.
        resume = (Path(cfg.output_dir) / STATE_DIR / "trainer_state.json").is_file()
        result = run_sft(
            cfg,
            progress=progress,
            model=m,
            tokenizer=tok,
            method=hooks,
            resume=resume,
            overwrite=not resume,
        )
        return result.final_model

    return train


# What a continual run writes in its output folder (the only entries --overwrite removes).
CONTINUAL_OUTPUTS = ("matrix.json", "matrix.png", "initial.json", "stage*-*")


def run_continual(
    model: str,
    tasks: list[str],
    output_dir: str | Path,
    method: str | StageTrainer = "osft",
    samples_per_task: int = 4000,
    eval_problems: int = 64,
    options: dict[str, Any] | None = None,
    *,
    data_seed: int = 0,
    eval_seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> ContinualResult:
    """Train ``tasks`` in order from ``model`` and evaluate every task after every stage.

    Args:
        method: "osft" (orthogonal subspaces; the options choose the rank mode), "sft"
            (plain sequential full fine-tuning, the forgetting baseline), or a StageTrainer.
        options: OSFTConfig keys applied to every stage (lr, max_steps, rank_mode, ...).
        data_seed: seed of each task's generated training samples (``samples_per_task``).
        eval_seed: seed of the held-out problems every evaluation uses.
        resume: continue a stopped run in ``output_dir`` (finished stages are kept, a stage in
            progress resumes from its saved state); ``overwrite``: start over there (only what
            a continual run writes is removed). A non-empty folder is refused without either.
        progress: progress bars for training and evaluation.
    Writes ``matrix.json`` and ``matrix.png`` under ``output_dir``.
    """
    if len(tasks) < 2:
        raise ConfigError("continual learning needs at least two tasks, e.g. --tasks a,b")
    for t in tasks:
        get_task(t)
    if isinstance(method, str):
        if method not in ("osft", "sft"):
            raise ConfigError(f"unknown continual method {method!r}; choose osft or sft")
        name, train_stage = method, _recipe_stage(method == "osft", progress)
    else:
        name, train_stage = getattr(method, "__name__", "custom"), method
    out = Path(output_dir)
    _prepare_continual_dir(out, resume, overwrite)
    current = str(resolve_model(model))

    template = (options or {}).get("chat_template")  # for a starting model without one

    def accuracy(model_dir: str | Path) -> dict[str, float]:
        m, tok = load_model(model_dir, chat_template=template)
        res = evaluate(m, tok, tasks, eval_problems, seed=eval_seed, progress=progress)
        return {k: r.accuracy for k, r in res.items()}

    initial = _cached(out / "initial.json", lambda: {"accuracy": accuracy(current)})["accuracy"]
    matrix: list[list[float]] = []
    for i, task in enumerate(tasks):
        stage = out / f"stage{i + 1}-{task}"
        if not (stage / "eval.json").is_file():
            examples = get_task(task).generate(samples_per_task, "train", seed=data_seed)
            cfg = _stage_config(options or {}, i, len(tasks), current, examples, stage)
            final = train_stage(current, cfg)
            doc = {"model": str(final), "accuracy": accuracy(final)}
            atomic_write_text(stage / "eval.json", json.dumps(doc, indent=2) + "\n")
        done = json.loads((stage / "eval.json").read_text())
        matrix.append([done["accuracy"][t] for t in tasks])
        current = done["model"]
    avg = sum(matrix[-1]) / len(tasks)
    first = [initial[t] for t in tasks]
    result = ContinualResult(tasks, matrix, avg, backward_transfer(matrix), first, name)
    atomic_write_text(out / "matrix.json", json.dumps(asdict(result), indent=2) + "\n")
    plot_matrix(result, out / "matrix.png")
    return result


def _prepare_continual_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if resume and overwrite:
        raise ConfigError("choose one of --resume (continue the run) and --overwrite (restart)")
    check_output_dir(out, overwrite=overwrite, resume=resume, what="continual run folder")
    if overwrite:
        remove_owned(out, CONTINUAL_OUTPUTS)


def _cached(path: Path, compute: Callable[[], dict]) -> dict:
    """``path``'s JSON if present, else ``compute()`` written there (a resumed run skips it)."""
    if path.is_file():
        return json.loads(path.read_text())
    doc = compute()
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return doc


def plot_matrix(result: ContinualResult, path: Path, title: str | None = None) -> Path:
    """Heatmap of a[i][j] (rows: after training task i; columns: evaluated task j)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = len(result.tasks)
    fig, ax = plt.subplots(figsize=(1.2 * T + 2, 1.0 * T + 1.5), dpi=110)
    im = ax.imshow(result.matrix, vmin=0, vmax=1, cmap="viridis")
    for i in range(T):
        for j in range(T):
            v = result.matrix[i][j]
            ax.text(
                j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black"
            )
    ax.set_xticks(range(T), result.tasks, rotation=30)
    ax.set_yticks(range(T), [f"after {t}" for t in result.tasks])
    ax.set_title(
        title
        or f"{result.method}: avg {result.average_accuracy:.2f}, "
        f"BWT {result.backward_transfer:+.2f}"
    )
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
