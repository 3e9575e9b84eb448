"""Mix generated leaves into the two training sets LAB trains on (``burnish mix``).

- ``phase07.jsonl`` (knowledge): every knowledge row with its document chunk in context,
  ``unmask: true`` (the chunk is trained on as well as the answer).
- ``phase10.jsonl`` (skills): every skill leaf at exactly ``per_leaf`` rows (a random
  subset, or the rows repeated in a shuffled cycle when the leaf has fewer); every knowledge
  row again RAFT-style, its question after ``distractors`` documents that hold the golden
  chunk with probability ``golden_p`` and are otherwise distractor chunks only, upsampled
  (fresh document draws) to at least ``min_knowledge`` of the skill rows; and a replay of
  ``replay`` of the phase-07 rows.

Rows repeated across leaves (same question and answer) are kept once, the first in leaf
order. Every output row is ``{"id", "messages", "metadata", "unmask"}``, which ``burnish
sft`` reads as it is. The draws depend only on ``seed``.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from burnish.errors import ConfigError, DataError
from burnish.io import atomic_write_text, check_output_file, read_jsonl, write_jsonl

__all__ = ["MIX_OUTPUTS", "MixSettings", "knowledge_prompt", "mix", "read_generated"]

MIX_OUTPUTS = ("phase07.jsonl", "phase10.jsonl", "mix.json")


@dataclass(frozen=True)
class MixSettings:
    per_leaf: int = 30  # skill rows per leaf (LAB's recipe)
    min_knowledge: float = 0.03  # RAFT knowledge rows: at least this share of the skill rows
    distractors: int = 3  # documents before each RAFT question (golden one included or not)
    golden_p: float = 0.4  # probability that the golden chunk is among them
    replay: float = 1.0  # share of the phase-07 rows replayed in phase 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.per_leaf < 1 or self.distractors < 1:
            raise ConfigError("--per-leaf and --distractors must be at least 1")
        for name in ("min_knowledge", "golden_p", "replay"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"--{name.replace('_', '-')} must lie in [0, 1]")


def read_generated(sources: list[Path]) -> list[dict]:
    """The rows of ``burnish generate`` outputs (folders with ``leaves/*.jsonl``) or of
    JSONL files, in order; a row needs ``messages`` and ``metadata.leaf``/``kind``."""
    rows = []
    for src in sources:
        files = sorted((src / "leaves").rglob("*.jsonl")) if src.is_dir() else [src]
        if not files:
            raise DataError(f"{src}: no leaves/*.jsonl here; pass a `burnish generate` output")
        for f in files:
            for i, row in enumerate(read_jsonl(f), 1):
                meta = row.get("metadata") or {}
                if "messages" not in row or "leaf" not in meta or "kind" not in meta:
                    raise DataError(
                        f"{f}:{i}: not a generated row (needs messages and metadata.leaf/kind)"
                    )
                rows.append(row)
    return rows


def _key(row: dict) -> tuple[str, ...]:
    return tuple(" ".join(m["content"].split()).lower() for m in row["messages"])


def _dedupe(rows: list[dict]) -> tuple[list[dict], int]:
    seen, kept = set(), []
    for r in rows:
        if _key(r) not in seen:
            seen.add(_key(r))
            kept.append(r)
    return kept, len(rows) - len(kept)


def knowledge_prompt(documents: list[str], question: str) -> str:
    """A question after its documents, as phase-07 and RAFT rows put it."""
    return "".join(f"Document:\n{d}\n\n" for d in documents) + question


def _out(row: dict, rid: str, user: str, unmask: bool, **meta: object) -> dict:
    return {
        "id": rid,
        "messages": [{"role": "user", "content": user}, row["messages"][-1]],
        "metadata": {**row["metadata"], **meta},
        "unmask": unmask,
    }


def _skill_rows(rows: list[dict], per_leaf: int, rng: random.Random) -> list[dict]:
    out = []
    leaves: dict[str, list[dict]] = {}
    for r in rows:
        leaves.setdefault(r["metadata"]["leaf"], []).append(r)
    for leaf, xs in leaves.items():
        order = rng.sample(xs, len(xs))
        for k in range(per_leaf):
            r = order[k % len(order)]
            copy = k // len(order)
            out.append({**r, "id": f"{r.get('id', leaf)}@{copy}", "unmask": False,
                        "metadata": {**r["metadata"], "set": "skills", "copy": copy}})  # fmt: skip
    return out


def _raft_rows(rows: list[dict], total: int, s: MixSettings, rng: random.Random) -> list[dict]:
    """``total`` RAFT rows cycling over the knowledge ``rows`` (each pass draws anew)."""
    chunks = sorted({r["metadata"]["chunk"] for r in rows})
    out = []
    for k in range(total):
        r = rows[k % len(rows)]
        golden = r["metadata"]["chunk"]
        others = [c for c in chunks if c != golden]
        with_golden = rng.random() < s.golden_p or not others
        n_other = s.distractors - 1 if with_golden else s.distractors
        docs = rng.sample(others, min(n_other, len(others)))
        if with_golden:
            docs.insert(rng.randrange(len(docs) + 1), golden)
        user = knowledge_prompt(docs, r["messages"][0]["content"])
        out.append(_out(r, f"{r['id']}@raft{k // len(rows)}", user, False,
                        set="raft", golden=with_golden))  # fmt: skip
    return out


def mix(sources: list[Path], out: Path, s: MixSettings, overwrite: bool = False) -> dict:
    """Write ``OUT/phase07.jsonl``, ``OUT/phase10.jsonl`` and the report ``OUT/mix.json``
    (see the module doc); returns the report."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: is a file; give a folder for the mixed sets")
    for name in MIX_OUTPUTS:
        check_output_file(out / name, overwrite=overwrite)
    rows, dropped = _dedupe(read_generated(sources))
    rng = random.Random(s.seed)
    knowledge = [r for r in rows if r["metadata"]["kind"] == "knowledge"]
    skills = [r for r in rows if r["metadata"]["kind"] != "knowledge"]
    missing = [r.get("id") for r in knowledge if "chunk" not in r["metadata"]]
    if missing:
        raise DataError(f"knowledge rows without metadata.chunk (e.g. {missing[0]!r})")
    phase07 = [
        _out(
            r,
            f"{r['id']}@doc",
            knowledge_prompt([r["metadata"]["chunk"]], r["messages"][0]["content"]),
            True,
            set="knowledge",
        )
        for r in knowledge
    ]
    skill_rows = _skill_rows(skills, s.per_leaf, rng)
    n_raft = max(len(knowledge), math.ceil(s.min_knowledge * len(skill_rows))) if knowledge else 0
    raft = _raft_rows(knowledge, n_raft, s, rng)
    replay = rng.sample(phase07, round(s.replay * len(phase07)))
    replay = [{**r, "id": f"{r['id']}@replay", "metadata": {**r["metadata"], "set": "replay"}}
              for r in replay]  # fmt: skip
    phase10 = skill_rows + raft + replay
    rng.shuffle(phase10)
    if not phase07 and not phase10:
        raise DataError("nothing to mix: the sources hold no rows")
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "phase07.jsonl", phase07)
    write_jsonl(out / "phase10.jsonl", phase10)
    report = {
        "settings": asdict(s),
        "sources": [str(p) for p in sources],
        "duplicates_dropped": dropped,
        "phase07": {"knowledge": len(phase07)},
        "phase10": {"skills": len(skill_rows), "raft": len(raft), "replay": len(replay),
                    "raft_with_golden": sum(r["metadata"]["golden"] for r in raft)},
        "skill_leaves": dict(sorted(_count(skill_rows).items())),
        "knowledge_leaves": dict(sorted(_count(knowledge).items())),
    }  # fmt: skip
    atomic_write_text(out / "mix.json", json.dumps(report, indent=2) + "\n")
    return report


def _count(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["metadata"]["leaf"]] = counts.get(r["metadata"]["leaf"], 0) + 1
    return counts
