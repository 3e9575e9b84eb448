"""``burnish taxonomy`` (read and validate an InstructLab taxonomy, list its leaves) and
``burnish generate`` (synthetic data for its leaves from a teacher)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from burnish.cli.common import API_KEY_ENV, console, print_table


def taxonomy_command(
    root: Path = typer.Argument(..., help="The taxonomy's root folder (holding the leaves)."),
    diff: str | None = typer.Option(
        None,
        "--diff",
        help="Only the leaves changed against this git ref (e.g. main), untracked ones too.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the leaves as JSON."),
) -> None:
    """Validate every qna.yaml under ROOT against InstructLab's JSON schemas (the newest
    version in instructlab-schema) and yamllint's errors, as InstructLab's own parser does;
    list the leaves: freeform skills, grounded skills (seed examples with a context) and
    knowledge (with its documents).

    An invalid leaf exits 2 with one line per bad file: FILE:LINE: `FIELD`: problem."""
    from burnish.sdg import read_taxonomy

    leaves = read_taxonomy(root, diff=diff)
    if as_json:
        console.print_json(json.dumps([leaf.to_dict() for leaf in leaves]))
        return
    rows = [(leaf.name, leaf.kind, str(len(leaf.seeds))) for leaf in leaves]
    what = f"changed against {diff}" if diff else "in the tree"
    print_table(f"{len(leaves)} leaves {what}", ["leaf", "kind", "seed examples"], rows)


def kept_generated(output: Path = Path("sdg"), **_: object) -> str:
    ledger = Path(output) / "progress.json"
    if not ledger.is_file():
        return f"no chunk was finished; nothing of this run was kept in {output}"
    doc = json.loads(ledger.read_text())
    rows = sum(v["rows"] for v in doc["leaves"].values())
    return (
        f"{output} holds the {rows} rows of the chunks finished so far; run the same command "
        "with --resume to continue"
    )


def _flows(specs: list[str]) -> dict[str, str]:
    from burnish.errors import ConfigError

    out = {}
    for spec in specs:
        kind, sep, flow = spec.partition("=")
        if not sep or not flow:
            raise ConfigError(f"--flow {spec!r}: write KIND=FLOW, e.g. knowledge=my_flow.yaml")
        out[kind] = flow
    return out


def generate_command(
    taxonomy: Path = typer.Argument(..., help="The taxonomy's root folder."),
    teacher: str = typer.Option(
        ..., help="The teacher's OpenAI-compatible URL, e.g. http://127.0.0.1:8000/v1."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the generated data."),
    teacher_model: str | None = typer.Option(
        None, help="The served model name (default: the first the server lists)."
    ),
    api_key: str | None = typer.Option(None, envvar=API_KEY_ENV, help="The teacher's token."),
    diff: str | None = typer.Option(None, help="Only leaves changed against this git ref."),
    rounds: int = typer.Option(2, min=1, help="Skills: passes over the seed examples."),
    num_samples: int | None = typer.Option(
        None, min=1, help="Replies per sample of each flow's first block (default: the flow's)."
    ),
    flow: list[str] = typer.Option(
        [],
        help="KIND=FLOW: a flow file (or built-in name) for freeform_skill, grounded_skill "
        "or knowledge; repeatable.",
    ),
    docs: Path | None = typer.Option(None, help="Knowledge documents from this local folder."),
    chunk_tokens: int = typer.Option(400, min=8, help="Knowledge chunk size (teacher tokens)."),
    augment: bool = typer.Option(True, help="Knowledge: also generate from chunk rewrites."),
    teacher_tokenizer: str | None = typer.Option(
        None, help="Count tokens with this local tokenizer (default: the server's /tokenize)."
    ),
    chunk: int = typer.Option(4, min=1, help="Samples per checkpoint."),
    concurrency: int = typer.Option(8, min=1, help="Teacher requests in flight at most."),
    timeout: float = typer.Option(120.0, help="Seconds per teacher request."),
    retries: int = typer.Option(3, min=0, help="Retries per request (with backoff)."),
    cache_dir: Path | None = typer.Option(
        None, help="The teacher's response cache (default ~/.cache/burnish/teacher)."
    ),
    resume: bool = typer.Option(False, help="Continue a stopped run into OUTPUT."),
    overwrite: bool = typer.Option(False, help="Replace what this command wrote in OUTPUT."),
    progress: bool = typer.Option(True, help="Show a progress bar per leaf with pass rates."),
) -> None:
    """Synthetic data for every leaf of TAXONOMY (or those changed against --diff) from a
    teacher behind any OpenAI-compatible server (burnish serve, vLLM, llama.cpp), through the
    built-in LAB flows: freeform skills (questions from the seeds, rated, answered, pairs
    rated), grounded skills (contexts first) and knowledge (QA pairs from document chunks and
    their rewrites, filtered for faithfulness, relevancy and question quality).

    Writes OUTPUT/leaves/<leaf>.jsonl (chat rows with id, messages, metadata: what `burnish
    sft` reads) and OUTPUT/generate.json (rows and every filter's pass rate per leaf). A leaf
    whose filters kept nothing is an error naming the filter (exit 2); --resume continues a
    killed run with no row lost or duplicated."""
    from burnish.sdg import Teacher, TeacherSettings, read_taxonomy
    from burnish.sdg.generate import GenerateSettings, generate

    settings = GenerateSettings(rounds, num_samples, chunk, chunk_tokens, augment, _flows(flow))
    leaves = read_taxonomy(taxonomy, diff=diff)
    client = Teacher(
        TeacherSettings(teacher, teacher_model, api_key, concurrency, timeout, retries, cache_dir)
    )
    count = None
    if any(leaf.kind == "knowledge" for leaf in leaves):
        if teacher_tokenizer is not None:
            from burnish.models import load_tokenizer
            from burnish.models.zoo import resolve_model
            from burnish.sdg import token_counter

            count = token_counter(load_tokenizer(resolve_model(teacher_tokenizer)))
        else:
            count = client.token_counter()
    report = generate(leaves, client, output, settings, count, docs, resume, overwrite, progress)
    rows = [
        (
            name,
            r["kind"],
            str(r["samples"]),
            str(r["rows"]),
            f"{min(r['pass_rates'].values(), default=0):.0%}",
        )
        for name, r in report["leaves"].items()
    ]
    print_table("generated", ["leaf", "kind", "samples", "rows", "lowest pass rate"], rows)
    console.print(
        f"{report['rows']} rows from {len(leaves)} leaves; wrote {output}/leaves and "
        f"{output}/generate.json (teacher cache: {client.hits} hits, {client.misses} requests)"
    )
    if client.over_context:
        console.print(
            f"{client.over_context} requests were over the teacher's context and got no reply "
            "(counted as unparsed); a teacher with a longer context, or smaller "
            "--chunk-tokens, keeps them"
        )


def _mix_default(name: str) -> object:
    """A MixSettings default (one definition, in burnish.sdg.mix)."""
    from burnish.sdg.mix import MixSettings

    return MixSettings.__dataclass_fields__[name].default


def mix_command(
    sources: list[Path] = typer.Argument(
        ..., help="`burnish generate` output folders (or their JSONL files)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the mixed sets."),
    per_leaf: int = typer.Option(
        _mix_default("per_leaf"), min=1, help="Skill rows per leaf (subset, or repeated)."
    ),
    min_knowledge: float = typer.Option(
        _mix_default("min_knowledge"),
        help="RAFT knowledge rows in phase 10: at least this share of the skill rows.",
    ),
    distractors: int = typer.Option(
        _mix_default("distractors"), min=1, help="Documents before each RAFT question."
    ),
    golden_p: float = typer.Option(
        _mix_default("golden_p"), help="Probability that the golden chunk is among them."
    ),
    replay: float = typer.Option(
        _mix_default("replay"), help="Share of the phase-07 rows replayed in phase 10."
    ),
    seed: int = typer.Option(_mix_default("seed"), help="Seed of every draw."),
    overwrite: bool = typer.Option(False, help="Replace the mixed sets in OUTPUT."),
) -> None:
    """Mix generated leaves into LAB's two training sets: OUTPUT/phase07.jsonl (knowledge,
    the document chunk in context, unmask) and OUTPUT/phase10.jsonl (each skill leaf at
    --per-leaf rows, knowledge again RAFT-style with distractor documents, upsampled to at
    least --min-knowledge of the skills, plus a replay of phase 07); rows repeated across
    leaves are kept once. `burnish sft --data` trains on either file as it is; `burnish
    phases` trains on both."""
    from burnish.sdg.mix import MixSettings, mix

    s = MixSettings(per_leaf, min_knowledge, distractors, golden_p, replay, seed)
    report = mix(sources, output, s, overwrite)
    p10 = report["phase10"]
    console.print(
        f"phase07: {report['phase07']['knowledge']} knowledge rows; phase10: {p10['skills']} "
        f"skill rows ({len(report['skill_leaves'])} leaves x {per_leaf}), {p10['raft']} RAFT "
        f"rows ({p10['raft_with_golden']} with the golden chunk), {p10['replay']} replayed; "
        f"{report['duplicates_dropped']} duplicates dropped; wrote {output}/phase07.jsonl, "
        f"{output}/phase10.jsonl and {output}/mix.json"
    )
