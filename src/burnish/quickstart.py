"""The quickstart job: fine-tune a zoo model on one task and show that it learned.

before-eval -> SFT (packed) -> after-eval -> loss curve PNG + Markdown report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from burnish.errors import ConfigError
from burnish.eval.evaluate import evaluate
from burnish.io import atomic_write_text, check_output_dir, remove_owned
from burnish.models.io import load_model
from burnish.models.zoo import resolve_model
from burnish.tasks import get_task
from burnish.train.finetune import examples_config
from burnish.train.sft import run_sft

__all__ = ["run_quickstart"]


# What the quickstart writes in its output folder (the only entries --overwrite removes).
QUICKSTART_OUTPUTS = ("report.md", "train.jsonl", "run", "cache")


def run_quickstart(
    output: str | Path = "quickstart-out",
    model: str = "base",
    task: str = "arith_chain",
    steps: int = 150,
    n_eval: int = 100,
    progress: bool = True,
    overwrite: bool = False,
    chat_template: str | Path | None = None,
) -> Path:
    """Run the quickstart; returns the path of the Markdown report.

    An ``output`` folder that is not empty is refused unless ``overwrite``, which replaces
    only what the quickstart writes there.
    """
    output = Path(output)
    get_task(task)  # unknown task -> clear error before any work
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps!r}")
    check_output_dir(output, overwrite=overwrite, what="quickstart folder")
    if overwrite:
        remove_owned(output, QUICKSTART_OUTPUTS)
    src = resolve_model(model)
    m, tok = load_model(src, chat_template=chat_template)
    t0 = time.time()
    before = evaluate(m, tok, [task], n_eval, progress=progress)[task]
    cfg = examples_config(
        get_task(task).generate(20_000, "train"),
        output,
        model=str(src),
        max_seq_len=128,
        effective_batch_size=128,
        lr=1e-3,
        max_steps=steps,
        save_epoch_end=False,
        save_state=False,
        device="cpu",
        cache_dir=str(output / "cache"),
    )
    result = run_sft(cfg, progress=progress, model=m, tokenizer=tok)
    after = evaluate(m, tok, [task], n_eval, progress=progress)[task]
    minutes = (time.time() - t0) / 60
    summary = json.loads((output / "run" / "summary.json").read_text())
    report = "\n".join(
        [
            f"# burnish quickstart: {model} on {task}",
            "",
            f"| | greedy accuracy ({before.n_problems} held-out problems) |",
            "|---|---|",
            f"| before | {before.accuracy:.3f} |",
            f"| after {result.steps} steps | {after.accuracy:.3f} |",
            "",
            f"- final loss {result.final_loss:.4f}; early signals (first "
            f"{summary['early_signals'].get('steps', 0)} steps): "
            + ", ".join(
                f"{k} {v:.4g}" for k, v in summary["early_signals"].items() if k != "steps"
            ),
            f"- wall time {minutes:.1f} min; fine-tuned model: {result.final_model}",
            "- loss curve: run/loss.png; metrics: run/metrics.jsonl",
            "",
            "Example after fine-tuning:",
            "",
            "```",
            after.examples[0]["prompt"],
            "->",
            after.examples[0]["output"],
            "```",
            "",
        ]
    )
    return atomic_write_text(output / "report.md", report)
