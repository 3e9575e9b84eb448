"""``burnish generate``: synthetic data for the leaves of a taxonomy, from a teacher.

Per leaf, input samples go through the leaf's flow (freeform skill, grounded skill or
knowledge; ``flows`` overrides one by kind):

- a skill: every seed example, ``rounds`` times (sample ``r-i``), with all the leaf's seed
  examples in the prompt (this one first);
- knowledge: every chunk of the leaf's documents (chunked by the teacher's tokenizer), and
  with ``augment`` each chunk's three rewrites by the document-augmentation flow, each paired
  with one seed group of the leaf (its context and questions) in turn.

Samples go in chunks of ``chunk``; after each, its rows are appended to
``OUT/leaves/<leaf>.jsonl.partial`` and ``OUT/progress.json`` (samples done, rows written and
the per-block counts of every leaf, plus the settings) is rewritten atomically. A resumed run
cuts each partial file back to the rows the ledger counts and redoes the interrupted chunk
(the teacher's response cache answers what was asked before), so a killed run ends with
exactly the rows of an uninterrupted one. A finished leaf's file is renamed to
``OUT/leaves/<leaf>.jsonl``.

Rows: ``id``, ``messages`` (user: the question, after its context for grounded skills;
assistant: the answer), ``metadata`` (leaf, kind, flow, teacher, the ratings; knowledge: the
chunk and document the pair came from). A leaf whose flow kept nothing gets no file, and the
run ends with :class:`burnish.sdg.flow.EmptyResultError` naming the filter, after writing
every other leaf and ``OUT/generate.json`` (rows and pass rates per leaf and filter).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from burnish.errors import ConfigError, DataError
from burnish.io import atomic_write_text, check_output_dir, read_jsonl, remove_owned
from burnish.progress import progress_bar
from burnish.sdg.documents import chunk_text, leaf_documents
from burnish.sdg.flow import SAMPLE, EmptyResultError, Flow, FlowStats, load_flow
from burnish.sdg.taxonomy import Leaf, SeedExample

__all__ = [
    "GENERATE_OUTPUTS",
    "GenerateSettings",
    "format_seed_group",
    "format_seeds",
    "generate",
    "leaf_file",
    "leaf_inputs",
]

GENERATE_OUTPUTS = ("leaves", "progress.json", "generate.json")
FLOW_OF_KIND = {"freeform_skill": "freeform_skill", "grounded_skill": "grounded_skill",
                "knowledge": "knowledge"}  # fmt: skip
RATINGS = ("question_rating", "pair_rating", "faithfulness", "relevancy", "question_quality")


@dataclass
class GenerateSettings:
    rounds: int = 2  # skills: passes over the seed examples
    num_samples: int | None = None  # replies per sample of each flow's first block (None: flow's)
    chunk: int = 4  # samples per checkpoint
    chunk_tokens: int = 400  # knowledge: document chunk size in teacher tokens
    augment: bool = True  # knowledge: generate from the chunks' rewrites too
    flows: dict[str, str] = field(default_factory=dict)  # kind -> flow name or file

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.chunk < 1 or (self.num_samples or 1) < 1:
            raise ConfigError("--rounds, --chunk and --num-samples must be at least 1")
        unknown = sorted(set(self.flows) - set(FLOW_OF_KIND))
        if unknown:
            raise ConfigError(f"--flow: unknown kind(s) {unknown}; use {sorted(FLOW_OF_KIND)}")


def format_seeds(seeds: list[SeedExample], first: int = 0) -> str:
    """Skill seed examples as the flows show them (``{seed_examples}``), starting at
    ``first`` and wrapping round."""
    order = seeds[first:] + seeds[:first]
    return "\n\n".join(
        (f"Context: {s.context}\n" if s.context else "")
        + f"Question: {s.question}\nAnswer: {s.answer}"
        for s in order
    )


def format_seed_group(context: str, pairs: list[SeedExample]) -> str:
    """One knowledge seed context with its questions and answers, as the knowledge flow
    shows it (``{seed_examples}``)."""
    return f"Passage: {context}\n" + "\n".join(
        f"Question: {x.question}\nAnswer: {x.answer}" for x in pairs
    )


def _flow_for(leaf: Leaf, s: GenerateSettings) -> Flow:
    flow = load_flow(s.flows.get(leaf.kind, FLOW_OF_KIND[leaf.kind]))
    if s.num_samples is not None:
        first = next(b for b in flow.blocks if b.type == "llm")
        first.n = s.num_samples
    return flow


def _seed_groups(leaf: Leaf) -> list[str]:
    """Knowledge: one text per seed context with its questions and answers."""
    groups: dict[str, list[SeedExample]] = {}
    for seed in leaf.seeds:
        groups.setdefault(seed.context or "", []).append(seed)
    return [format_seed_group(ctx, xs) for ctx, xs in groups.items()]


def leaf_inputs(
    leaf: Leaf,
    s: GenerateSettings,
    count: Callable[[str], int] | None = None,
    chat_many=None,
    docs: Path | None = None,
) -> list[dict]:
    """The leaf's input samples (see the module doc); knowledge needs ``count`` (tokens of
    a text) and, with augmentation, ``chat_many``."""
    if leaf.kind != "knowledge":
        return [
            {
                SAMPLE: f"{r}-{i}",
                "task_description": leaf.description,
                "seed_examples": format_seeds(leaf.seeds, i),
                "seed_question": seed.question,
                "seed_answer": seed.answer,
                "seed_context": seed.context or "",
            }
            for r in range(s.rounds)
            for i, seed in enumerate(leaf.seeds)
        ]
    if count is None:
        raise ConfigError("knowledge leaves need the teacher's tokenizer to chunk documents")
    chunks = [
        (d.name, c)
        for d in leaf_documents(leaf, docs)
        for c in chunk_text(d.text, count, s.chunk_tokens)
    ]
    texts = [(f"{j}", name, c, "original") for j, (name, c) in enumerate(chunks)]
    if s.augment and chat_many is not None:
        aug = load_flow("document_augmentation")
        rows = [{SAMPLE: f"{j}", "chunk": c, "document_outline": leaf.outline or ""}
                for j, (_, c) in enumerate(chunks)]  # fmt: skip
        out, _ = aug.run(rows, chat_many)
        for r in out:
            j = int(r[SAMPLE].split(".")[0])
            for b in aug.blocks:
                if r.get(b.output):
                    texts.append((f"{j}{b.name[0]}", chunks[j][0], r[b.output], b.output))
    groups = _seed_groups(leaf)
    return [
        {
            SAMPLE: sid,
            "domain": leaf.description,
            "document_outline": leaf.outline or "",
            "chunk": text,
            "document": name,
            "source": source,
            "seed_examples": groups[k % len(groups)],
        }
        for k, (sid, name, text, source) in enumerate(texts)
    ]


def leaf_file(out: Path, leaf: Leaf, partial: bool = False) -> Path:
    """``OUT/leaves/<leaf>.jsonl`` (``.partial`` while the leaf is being generated)."""
    return out / "leaves" / f"{leaf.name}.jsonl{'.partial' if partial else ''}"


def _row(leaf: Leaf, flow: Flow, teacher: str, r: dict) -> dict:
    user = r["question"]
    if leaf.kind == "grounded_skill":
        user = f"{r['context']}\n\n{r['question']}"
    meta = {"leaf": leaf.name, "kind": leaf.kind, "flow": flow.name, "teacher": teacher}
    meta |= {k: r[k] for k in RATINGS if k in r}
    if leaf.kind == "knowledge":
        meta |= {"chunk": r["chunk"], "document": r["document"], "source": r["source"]}
    return {
        "id": f"{leaf.name}#{r[SAMPLE]}",
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": r["answer"]},
        ],
        "metadata": meta,
    }


def _append(path: Path, rows: list[dict]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
        f.flush()
        os.fsync(f.fileno())


def _cut(path: Path, rows: int) -> None:
    """Keep the first ``rows`` lines of ``path`` (what the ledger counts)."""
    if not path.exists():
        if rows:
            raise DataError(f"{path}: missing, but the ledger counts {rows} rows; use --overwrite")
        return
    kept = read_jsonl(path)[:rows] if rows else []
    if len(kept) < rows:
        raise DataError(f"{path}: has fewer rows than the ledger counts; use --overwrite")
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def _start(out: Path, config: dict, resume: bool, overwrite: bool) -> dict:
    ledger = out / "progress.json"
    if resume and ledger.is_file():
        state = json.loads(ledger.read_text())
        if state.get("settings") != config:
            raise ConfigError(
                f"{out}: --resume with other settings than the run there "
                f"(saved {state.get('settings')}); rerun with those or use --overwrite"
            )
        return state
    check_output_dir(out, overwrite=overwrite, resume=resume, what="generated data folder")
    if overwrite and out.is_dir():
        remove_owned(out, GENERATE_OUTPUTS)
    out.mkdir(parents=True, exist_ok=True)
    return {"settings": config, "leaves": {}}


def generate(
    leaves: list[Leaf],
    teacher,
    out: str | Path,
    settings: GenerateSettings,
    count: Callable[[str], int] | None = None,
    docs: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Generate for every leaf into ``out`` (see the module doc); returns the report."""
    out = Path(out)
    config = {**asdict(settings), "teacher": teacher.base, "model": teacher.model,
              "leaves": [leaf.name for leaf in leaves]}  # fmt: skip
    state = _start(out, config, resume, overwrite)
    report, empty = {}, []
    for leaf in leaves:
        flow = _flow_for(leaf, settings)
        inputs = leaf_inputs(leaf, settings, count, teacher.chat_many, docs)
        st = state["leaves"].setdefault(leaf.name, {"samples": 0, "rows": 0, "stats": {}})
        final, partial = leaf_file(out, leaf), leaf_file(out, leaf, partial=True)
        stats = FlowStats.from_dict(st["stats"])
        if not final.is_file() or st["samples"] < len(inputs):
            partial.parent.mkdir(parents=True, exist_ok=True)
            _cut(partial, st["rows"])
            with progress_bar(len(inputs), leaf.name, progress, done=st["samples"]) as advance:
                for i in range(st["samples"], len(inputs), settings.chunk):
                    part = inputs[i : i + settings.chunk]
                    rows, chunk_stats = flow.run(part, teacher.chat_many)
                    _append(partial, [_row(leaf, flow, teacher.model, r) for r in rows])
                    stats.merge(chunk_stats)
                    st |= {"samples": i + len(part), "rows": st["rows"] + len(rows),
                           "stats": stats.to_dict()}  # fmt: skip
                    atomic_write_text(out / "progress.json", json.dumps(state, indent=1) + "\n")
                    rates = " ".join(f"{k} {v:.0%}" for k, v in stats.pass_rates().items()
                                     if k.endswith(("filter", "questions")))  # fmt: skip
                    advance(len(part), info=f"rows {st['rows']} | {rates}")
            if st["rows"]:
                partial.replace(final)
            else:
                partial.unlink(missing_ok=True)
        report[leaf.name] = {"kind": leaf.kind, "flow": flow.name, "samples": len(inputs),
                             "rows": st["rows"], "pass_rates": stats.pass_rates(),
                             **stats.to_dict()}  # fmt: skip
        if not st["rows"]:
            empty.append(flow.explain_empty(stats, leaf.name))
    summary = {"teacher": teacher.base, "model": teacher.model, "leaves": report,
               "rows": sum(r["rows"] for r in report.values())}  # fmt: skip
    atomic_write_text(out / "generate.json", json.dumps(summary, indent=1) + "\n")
    if empty:
        raise EmptyResultError("\n".join(str(e) for e in empty))
    return summary
