"""``burnish sft`` and ``burnish osft``: training recipes from YAML plus command-line overrides."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from pydantic import BaseModel

from burnish.cli.common import PICKLE_OPT, TEMPLATE_OPT, console
from burnish.train.config import DPOConfig, OSFTConfig, PhaseEval, SFTConfig

__all__ = ["dpo_command", "kept", "kept_phases", "osft_command", "phases_command", "sft_command"]


def _fields_help(cls: type[BaseModel]) -> str:
    lines = ["Config keys (YAML or --set KEY=VALUE):"]
    for name, f in cls.model_fields.items():
        default = "required" if f.is_required() else f"default {f.default!r}"
        lines.append(f"  {name}: {f.description} ({default})")
    return "\n\n".join(lines)


def _config(
    cls: type[SFTConfig],
    config: Path | None,
    model: str | None,
    data: str | None,
    output_dir: str | None,
    set_: list[str],
    allow_pickle: bool,
    chat_template: Path | None,
) -> SFTConfig:
    """The validated config: YAML, then --set overrides, then the explicit options."""
    from burnish.config import load_config, parse_overrides

    overrides = parse_overrides(set_)
    overrides.update({"model": model, "data": data, "output_dir": output_dir})
    if allow_pickle:
        overrides["allow_pickle"] = True
    if chat_template is not None:
        overrides["chat_template"] = str(chat_template)
    return load_config(cls, config, overrides)


def _train(cls: type[SFTConfig], resume: bool, overwrite: bool, **options: object) -> None:
    """Run the recipe of ``cls`` with the command's options (its ``locals()``)."""
    from burnish.data.dataset import describe_report
    from burnish.train.config import with_recommended
    from burnish.train.distributed import shutdown_distributed
    from burnish.train.osft import OSFT
    from burnish.train.sft import run_sft

    cfg, used = with_recommended(_config(cls, **options))  # type: ignore[arg-type]
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if used and main_rank:
        console.print(
            "using the model card's recommended "
            + ", ".join(f"{k}={v}" for k, v in used.items())
            + f" ({cfg.model}); set them with --set to override"
        )
    method = OSFT(cfg) if isinstance(cfg, OSFTConfig) else None
    result = run_sft(cfg, resume=resume, method=method, overwrite=overwrite)
    shutdown_distributed()  # under torchrun: leave the process group before exiting
    if not main_rank:
        return  # one report, from the main rank
    console.print("data: " + describe_report(result.data_report))
    console.print(
        f"final model: {result.final_model}  (steps {result.steps}, loss {result.final_loss:.4f})"
    )
    if method is not None:
        console.print(f"frozen share of targeted ranks: {method.frozen_share():.3f}")
    if result.early_signals:
        console.print("early signals: " + json.dumps(result.early_signals))


def kept(**options: object) -> str:
    """What an interrupted ``sft``/``osft``/``dpo`` left on disk, and how to continue it."""
    from burnish.errors import BurnishError
    from burnish.train.checkpoint import STATE_DIR

    allowed = ("config", "model", "data", "output_dir", "set_", "allow_pickle", "chat_template")
    # OSFTConfig accepts every SFT key; DPOConfig every SFT key and its own.
    try:
        cfg = _config(OSFTConfig, **{k: options[k] for k in allowed})  # type: ignore[arg-type]
    except BurnishError:
        cfg = _config(DPOConfig, **{k: options[k] for k in allowed})  # type: ignore[arg-type]
    state = Path(cfg.output_dir) / STATE_DIR / "trainer_state.json"
    if not state.is_file():
        return (
            f"no resumable state was saved yet in {cfg.output_dir} (every "
            f"{cfg.save_state_every_steps} steps and at epoch ends); rerun with --overwrite "
            "to start again"
        )
    step = json.loads(state.read_text())["trainer"]["step"]
    return (
        f"{state.parent} holds the state after step {step}; run the same command with --resume "
        "to continue from there"
    )


CONFIG_ARG = typer.Argument(None, help="YAML config (see examples/).")
MODEL_OPT = typer.Option(None, "--model", "-m", help="Model directory or zoo name.")
DATA_OPT = typer.Option(
    None, "--data", "-d", help="Chat JSONL, or a .safetensors file from `burnish data prepare`."
)
OUT_OPT = typer.Option(None, "--output-dir", "-o", help="Run directory.")
SET_OPT = typer.Option([], "--set", "-s", help="Override a config key: KEY=VALUE.")
RESUME_OPT = typer.Option(
    False,
    help="Continue the run in OUTPUT_DIR from its saved state (same settings, model and data, "
    "compared by content; max_steps/epochs may be raised).",
)
OVERWRITE_OPT = typer.Option(
    False, help="Start over in an OUTPUT_DIR that holds a run (only burnish's files go)."
)


def sft_command(
    config: Path | None = CONFIG_ARG,
    model: str | None = MODEL_OPT,
    data: str | None = DATA_OPT,
    output_dir: str | None = OUT_OPT,
    set_: list[str] = SET_OPT,
    resume: bool = RESUME_OPT,
    overwrite: bool = OVERWRITE_OPT,
    allow_pickle: bool = PICKLE_OPT,
    chat_template: Path | None = TEMPLATE_OPT,
) -> None:
    """Fine-tune with packed, padding-free batches (AdamW, per-token-mean loss).

    Writes metrics.jsonl, summary.json (with early signals), loss.png and HF checkpoints
    under the output directory; final weights go to OUTPUT_DIR/final.
    """
    _train(SFTConfig, **locals())


def osft_command(
    config: Path | None = CONFIG_ARG,
    model: str | None = MODEL_OPT,
    data: str | None = DATA_OPT,
    output_dir: str | None = OUT_OPT,
    set_: list[str] = SET_OPT,
    resume: bool = RESUME_OPT,
    overwrite: bool = OVERWRITE_OPT,
    allow_pickle: bool = PICKLE_OPT,
    chat_template: Path | None = TEMPLATE_OPT,
) -> None:
    """Full fine-tuning confined to the complement of each weight's frozen top singular subspace.

    Same recipe, data, packing, checkpoints, resume and torchrun support as `burnish sft`;
    the output is a plain dense HF checkpoint.
    """
    _train(OSFTConfig, **locals())


def dpo_command(
    config: Path | None = CONFIG_ARG,
    model: str | None = MODEL_OPT,
    data: str | None = typer.Option(
        None,
        "--data",
        "-d",
        help="Preference JSONL (prompt, chosen, rejected), e.g. from `burnish label`.",
    ),
    output_dir: str | None = OUT_OPT,
    set_: list[str] = SET_OPT,
    resume: bool = RESUME_OPT,
    overwrite: bool = OVERWRITE_OPT,
    allow_pickle: bool = PICKLE_OPT,
    chat_template: Path | None = TEMPLATE_OPT,
) -> None:
    """Preference tuning: DPO (--set loss=sigmoid, the default; ipo; hinge) or SimPO
    (loss=simpo, reference-free), on the SFT machinery (packed pairs, torchrun/FSDP2, exact
    resume).

    The reference model's log-probs are computed once and cached in OUTPUT_DIR. Writes
    metrics.jsonl with TRL's names (rewards/chosen, rewards/rejected, rewards/margins,
    rewards/accuracies), summary.json, loss.png and OUTPUT_DIR/final. Note: the zoo cards'
    recommended SFT learning rate is not applied; DPO wants a smaller one (--set lr=...).
    """
    opts = {k: v for k, v in locals().items() if k not in ("resume", "overwrite")}
    from burnish.train.distributed import shutdown_distributed
    from burnish.train.dpo import run_dpo

    result = run_dpo(_config(DPOConfig, **opts), resume=resume, overwrite=overwrite)
    shutdown_distributed()
    if int(os.environ.get("RANK", "0")) == 0:
        m = {k: float(v) for k, v in result.final_metrics.items() if k != "step"}
        nan = float("nan")
        console.print(
            f"final model: {result.final_model}  (steps {result.steps}, loss "
            f"{m.get('loss', nan):.4f}, margin {m.get('rewards/margins', nan):.3f}, "
            f"accuracy {m.get('rewards/accuracies', nan):.3f})"
        )


def phases_command(
    model: str = typer.Option(..., "--model", "-m", help="Starting model directory or zoo name."),
    mix: Path = typer.Option(..., help="A `burnish mix` output (phase07.jsonl, phase10.jsonl)."),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="Run directory."),
    mode: str = typer.Option(
        "multi", help="multi (knowledge, then skills + replay) or stacked (one phase)."
    ),
    eval_tasks: str = typer.Option(
        "",
        help="Pick each phase's best epoch by mean accuracy on these zoo tasks (a,b,...); "
        "default: by the loss on rows held out of the phase's data.",
    ),
    eval_problems: int = typer.Option(
        PhaseEval.problems, min=1, help="Test problems per evaluation task."
    ),
    holdout: float = typer.Option(
        PhaseEval.holdout, help="Share of rows held out for the loss evaluation."
    ),
    set_: list[str] = SET_OPT,
    resume: bool = typer.Option(
        False, help="Continue: finished phases are skipped, an interrupted one resumes."
    ),
    overwrite: bool = OVERWRITE_OPT,
    progress: bool = typer.Option(True, help="Show training progress."),
) -> None:
    """LAB's phased training on `burnish mix`'s sets with the SFT recipe: multi-phase
    (knowledge on phase07 with a smaller batch and the full learning rate, then skills on
    phase10 with a larger batch and half the rate, from the knowledge phase's best epoch) or
    stacked (one phase on both).

    Each phase saves a checkpoint per epoch in OUTPUT_DIR/<phase>/run/checkpoints; the best
    by the evaluation starts the next phase; OUTPUT_DIR/phases.json records the scores and
    choices; OUTPUT_DIR/final is the last phase's best. --set KEY=VALUE applies an SFT key to
    every phase (lr is scaled per phase; epochs and effective_batch_size replace the phase
    defaults)."""
    from burnish.cli.common import split_names
    from burnish.config import parse_overrides
    from burnish.train.phases import run_phases

    ev = PhaseEval(tuple(split_names(eval_tasks)), eval_problems, holdout)
    doc = run_phases(model, mix, output_dir, mode, ev, parse_overrides(set_), resume, overwrite,
                     progress, log=console.print)  # fmt: skip
    for name, p in doc["phases"].items():
        console.print(f"{name}: best {Path(p['best']).name} ({doc['metric']} {p['score']})")
    console.print(f"final model: {doc['final']}  (ledger {output_dir}/phases.json)")


def kept_phases(output_dir: Path = Path("."), **_: object) -> str:
    ledger = Path(output_dir) / "phases.json"
    if not ledger.is_file():
        return f"no phase was started in {output_dir}; nothing was kept"
    done = [n for n, p in json.loads(ledger.read_text())["phases"].items() if p.get("best")]
    return (
        f"{output_dir} keeps the finished phases ({', '.join(done) or 'none'}) and the saved "
        "state of the one running; run the same command with --resume to continue"
    )


sft_command.__doc__ = (sft_command.__doc__ or "") + "\n\n" + _fields_help(SFTConfig)
osft_command.__doc__ = (osft_command.__doc__ or "") + "\n\n" + _fields_help(OSFTConfig)
dpo_command.__doc__ = (dpo_command.__doc__ or "") + "\n\n" + _fields_help(DPOConfig)
