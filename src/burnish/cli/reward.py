"""``burnish reward-eval``: RewardBench-style pair accuracy of Dr.SoW, a PRM or a classifier."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.cli.common import API_KEY_ENV, PRM_KIND_OPT, console, print_table

__all__ = ["kept", "reward_eval_command"]

REWARDS = ("drsow", "prm", "classifier")


def kept(output: Path | None = None, **_: object) -> str:
    return "no results were written" + (f" to {output}" if output else "")


def reward_eval_command(
    data: Path = typer.Argument(..., help="JSONL rows: prompt, chosen, rejected[, subset]."),
    reward: str = typer.Option("drsow", help="drsow | prm | classifier."),
    strong: str | None = typer.Option(None, help="Dr.SoW: the better-aligned model."),
    weak: str | None = typer.Option(None, help="Dr.SoW: the less-aligned model."),
    normalize: str = typer.Option("sum", help="Dr.SoW: sum | mean (per-token) log-ratio."),
    strong_engine: str | None = typer.Option(
        None,
        help="Dr.SoW: score STRONG through this OpenAI-compatible server (its tokenizer "
        "and template from the STRONG directory).",
    ),
    weak_engine: str | None = typer.Option(None, help="Dr.SoW: the same for WEAK."),
    served_name: str | None = typer.Option(
        None, help="The model name the servers expect (default: the STRONG / WEAK argument)."
    ),
    api_key: str | None = typer.Option(None, envvar=API_KEY_ENV, help="Servers' Bearer token."),
    context: Path | None = typer.Option(
        None, help="Dr.SoW: YAML of domain instructions, examples and keywords (routing)."
    ),
    prm: str | None = typer.Option(None, help="--reward prm: the PRM (zoo name or directory)."),
    prm_kind: str | None = PRM_KIND_OPT,
    rm: str | None = typer.Option(None, help="--reward classifier: a sequence-classification RM."),
    batch_tokens: int = typer.Option(4096, min=2, help="Tokens per packed forward (local)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write results as JSON."),
    overwrite: bool = typer.Option(False, help="Replace an existing OUTPUT file."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N, mps or auto."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Score every chosen and rejected response; a pair is correct when chosen scores higher
    (a tie counts 0.5). Prints accuracy per section (RewardBench's sections, weighted by
    example count) and per subset; -o writes them with every pair's scores as JSON.

    Dr.SoW's reward is log p_strong(response) - log p_weak(response), each model rendering
    the conversation with its own chat template (different tokenizers are fine)."""
    import json

    from burnish.errors import ConfigError
    from burnish.io import atomic_write_text, check_output_file
    from burnish.reward.bench import evaluate_pairs, load_pairs, summarize

    if reward not in REWARDS:
        raise ConfigError(f"unknown --reward {reward!r}; choose one of {', '.join(REWARDS)}")
    if output is not None:
        check_output_file(output, overwrite)
    pairs = load_pairs(data)
    opts = locals()
    scorer = {"drsow": _drsow, "prm": _prm, "classifier": _classifier}[reward](opts)
    doc = summarize(evaluate_pairs(pairs, scorer))
    rows = [(name, str(s["n"]), f"{s['accuracy']:.3f}") for name, s in doc["sections"].items()]
    rows.append(("overall", str(len(pairs)), f"{doc['overall']:.3f}"))
    print_table(f"reward-eval {data} ({reward})", ("section", "pairs", "accuracy"), rows)
    if len(doc["subsets"]) > 1:
        subs = [(k, str(v["n"]), f"{v['accuracy']:.3f}") for k, v in doc["subsets"].items()]
        print_table("subsets", ("subset", "pairs", "accuracy"), subs)
    if output is not None:
        atomic_write_text(
            output, json.dumps({"data": str(data), "reward": reward, **doc}, indent=2) + "\n"
        )
        console.print(f"wrote {output}")


def _side(model: str | None, engine: str | None, opts: dict, flag: str):
    from burnish.errors import ConfigError
    from burnish.models import load_model, load_tokenizer
    from burnish.models.zoo import resolve_model
    from burnish.reward import LocalLogProbs, ServerLogProbs

    if model is None:
        raise ConfigError(f"--reward drsow needs {flag} MODEL (a zoo name or directory)")
    if engine is not None:
        tok = load_tokenizer(resolve_model(model))
        return ServerLogProbs(engine, opts["served_name"] or model, tok, opts["api_key"])
    m, tok = load_model(resolve_model(model), device=opts["device"])
    return LocalLogProbs(m, tok, opts["batch_tokens"], name=model, progress=opts["progress"])


def _drsow(opts: dict):
    from burnish.reward import DrSow
    from burnish.reward.drsow import load_context

    strong = _side(opts["strong"], opts["strong_engine"], opts, "--strong")
    weak = _side(opts["weak"], opts["weak_engine"], opts, "--weak")
    ctx = load_context(opts["context"]) if opts["context"] is not None else None
    return DrSow(strong, weak, opts["normalize"], ctx).score


def _prm(opts: dict):
    from burnish.errors import ConfigError
    from burnish.reward.bench import PRMScorer
    from burnish.scaling.reward import load_prm

    if opts["prm"] is None:
        raise ConfigError("--reward prm needs --prm NAME (a zoo PRM or directory)")
    return PRMScorer(load_prm(opts["prm"], device=opts["device"], kind=opts["prm_kind"]))


def _classifier(opts: dict):
    from transformers import AutoModelForSequenceClassification

    from burnish.errors import ConfigError, ModelLoadError
    from burnish.models import load_tokenizer
    from burnish.models.io import check_model_dir
    from burnish.reward.bench import ClassifierScorer

    if opts["rm"] is None:
        raise ConfigError("--reward classifier needs --rm DIR (a sequence-classification model)")
    path = check_model_dir(opts["rm"])
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(path), use_safetensors=True)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: not a sequence-classification model ({e})") from None
    return ClassifierScorer(model.eval().to(opts["device"]), load_tokenizer(path))
