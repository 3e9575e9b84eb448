"""``burnish reward-eval``: RewardBench-style pair accuracy of Dr.SoW, a PRM or a classifier."""

from __future__ import annotations

from pathlib import Path

import typer

from burnish.cli.common import API_KEY_ENV, PRM_KIND_OPT, console, print_table

__all__ = ["kept", "kept_labels", "label_command", "reward_eval_command"]

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


def kept_labels(output: Path = Path("pairs.jsonl"), **_: object) -> str:
    from burnish.reward.label import progress_path

    ledger = progress_path(Path(output))
    if not ledger.is_file():
        return f"no chunk was finished; nothing of this run was kept in {output}"
    import json

    doc = json.loads(ledger.read_text())
    return (
        f"{output} holds the {doc['rows']} pairs of the first {doc['chunks']} chunk(s); run "
        "the same command with --resume to continue"
    )


def label_command(
    prompts: Path | None = typer.Argument(None, help="JSONL rows with `prompt` (and `id`)."),
    task: str | None = typer.Option(None, help="Instead of PROMPTS: this task's train prompts."),
    n: int = typer.Option(100, min=1, help="With --task: how many prompts."),
    policy: str = typer.Option(
        ...,
        help="The policy to sample (zoo name, directory, or the served name with --policy-engine).",
    ),
    policy_engine: str | None = typer.Option(None, help="Sample through this OpenAI server."),
    strong: str | None = typer.Option(None, help="Dr.SoW: the better-aligned model."),
    weak: str | None = typer.Option(None, help="Dr.SoW: the less-aligned model."),
    normalize: str = typer.Option("sum", help="Dr.SoW: sum | mean (per-token) log-ratio."),
    strong_engine: str | None = typer.Option(None, help="Score STRONG through this server."),
    weak_engine: str | None = typer.Option(None, help="Score WEAK through this server."),
    served_name: str | None = typer.Option(None, help="The scorers' served model name."),
    api_key: str | None = typer.Option(None, envvar=API_KEY_ENV, help="Servers' Bearer token."),
    context: Path | None = typer.Option(None, help="Dr.SoW domain context / router YAML."),
    output: Path = typer.Option(..., "--output", "-o", help="Preference JSONL to write."),
    k: int = typer.Option(4, min=2, help="Responses sampled per prompt."),
    temperature: float = typer.Option(1.0, help="Sampling temperature (> 0)."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling."),
    max_tokens: int = typer.Option(256, min=1, help="Tokens per response at most."),
    margin: float = typer.Option(0.0, help="Keep a pair only if best - worst >= MARGIN."),
    chunk: int = typer.Option(8, min=1, help="Prompts per chunk (the unit of resumption)."),
    seed: int = typer.Option(0, help="Seed of the samples (chunk c uses SEED + c)."),
    batch_tokens: int = typer.Option(4096, min=2, help="Tokens per packed forward (local)."),
    resume: bool = typer.Option(False, help="Continue a stopped run into OUTPUT."),
    overwrite: bool = typer.Option(False, help="Replace OUTPUT (a file this command wrote)."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N, mps or auto."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Preference pairs labelled by Dr.SoW: sample K responses per prompt from POLICY, score
    each with log p_strong - log p_weak, keep best (chosen) vs worst (rejected).

    Writes TRL's conversational preference JSONL (prompt, chosen, rejected, with the scores),
    which `burnish reward-eval` and TRL's DPOTrainer read; --resume continues a killed run
    with no pair lost or duplicated."""
    from burnish.errors import ConfigError
    from burnish.models import load_model
    from burnish.models.zoo import resolve_model
    from burnish.reward.label import (
        LabelSettings,
        LocalSampler,
        ServerSampler,
        label_prompts,
        load_prompts,
    )

    settings = LabelSettings(k, temperature, top_p, max_tokens, margin, chunk, seed)
    if (prompts is None) == (task is None):
        raise ConfigError("give a PROMPTS file or --task NAME (one of the two)")
    rows = load_prompts(prompts) if prompts is not None else _task_prompts(task, n, seed)
    opts = locals()
    scorer = _drsow(opts)
    if policy_engine is not None:
        sampler = ServerSampler(policy_engine, policy, settings, api_key)
    else:
        sampler = LocalSampler(*load_model(resolve_model(policy), device=device), settings)
    identity = {
        "policy": policy,
        "strong": strong,
        "weak": weak,
        "normalize": normalize,
        "data": str(prompts or f"task:{task}:{n}"),
    }
    out = label_prompts(
        rows, sampler, scorer, output, settings, identity, resume, overwrite, progress
    )
    console.print(
        f"{out['pairs']} pairs from {out['prompts']} prompts ({out['skipped']} without a "
        f"pair: same text or under the margin); wrote {output}"
    )


def _task_prompts(task: str, n: int, seed: int) -> list[tuple[str, list[dict]]]:
    from burnish.tasks import get_task

    return [
        (f"{task}-{i}", [{"role": "user", "content": ex.prompt}])
        for i, ex in enumerate(get_task(task).generate(n, "train", seed=seed))
    ]
