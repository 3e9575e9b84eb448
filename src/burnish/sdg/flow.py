"""Flows: YAML pipelines of blocks (prompt template -> teacher call -> parse -> filter).

A flow file::

    name: freeform_skill
    description: questions from seed examples, rated, answered, pairs rated
    blocks:
      - name: questions           # an llm block: one request per row, n replies each
        type: llm
        prompt: |                 # str.format over the row's columns
          {task_description} ... {seed_question} ...
        n: 3
        parse: lines              # text | lines | rating | regex (with `pattern`)
                                  # (rating: the first integer, within `scale: [1, 3]` if set)
        output: question          # the column the parsed reply goes to
        temperature: 0.7          # optional, as max_tokens and system
      - name: question_quality    # a filter block: keep rows where column OP value
        type: filter
        column: question_rating
        op: ">="                  # >= > <= < == != (nonempty needs no value)
        value: 2
      - name: unique_questions    # a dedupe block: the first row of each value (within
        type: dedupe              # one input sample; the mix dedupes across a leaf)
        column: question

Rows are dicts (``_sample``: the input sample's id, then ``.j`` per reply); an llm block
turns each row into one row per parsed reply (none when the reply does not parse: counted),
a filter or dedupe block drops rows. Each block's rows in and out are counted
(:class:`FlowStats`), so a run can report every filter's pass rate and say which filter left
nothing. Every request carries a seed derived from the row's sample id and the block, so a
flow's output does not depend on how samples are chunked.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from burnish.errors import BurnishError, ConfigError

__all__ = [
    "BUILTIN_FLOWS",
    "Block",
    "EmptyResultError",
    "Flow",
    "FlowStats",
    "builtin_flow_path",
    "load_flow",
    "parse_reply",
]

PARSERS = ("text", "lines", "rating", "regex")
OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "nonempty": lambda a, _: bool(str(a).strip()),
}
BUILTIN_FLOWS = ("freeform_skill", "grounded_skill", "knowledge", "document_augmentation")
SAMPLE = "_sample"  # the column holding a row's sample id
# A chat function: a list of requests (keyword arguments of Teacher.chat) -> replies each.
ChatMany = Callable[[Sequence[dict]], list[list[str]]]


class EmptyResultError(BurnishError):
    """A flow produced no row; the message names the filter that left nothing."""


@dataclass
class Block:
    name: str
    type: str
    prompt: str = ""
    system: str | None = None
    n: int = 1
    parse: str = "text"
    pattern: str | None = None
    output: str | None = None
    temperature: float = 0.7
    max_tokens: int = 256
    scale: list[int] | None = None  # rating: [low, high]; other integers in the reply are skipped
    column: str | None = None
    op: str | None = None
    value: Any = None


@dataclass
class FlowStats:
    """Rows into and out of each block, in flow order."""

    rows_in: dict[str, int] = field(default_factory=dict)
    rows_out: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, n_in: int, n_out: int) -> None:
        self.rows_in[name] = self.rows_in.get(name, 0) + n_in
        self.rows_out[name] = self.rows_out.get(name, 0) + n_out

    def merge(self, other: FlowStats) -> None:
        for name in other.rows_in:
            self.add(name, other.rows_in[name], other.rows_out[name])

    def pass_rates(self) -> dict[str, float]:
        return {k: self.rows_out[k] / v if v else 0.0 for k, v in self.rows_in.items()}

    def to_dict(self) -> dict:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out}

    @classmethod
    def from_dict(cls, d: dict) -> FlowStats:
        return cls(dict(d.get("rows_in", {})), dict(d.get("rows_out", {})))


def parse_reply(text: str, block: Block) -> list[dict[str, Any]]:
    """The columns each parsed piece of a reply adds (several for ``lines``/``regex``)."""
    text = text.strip()
    if block.parse == "text":
        return [{block.output: text}] if text else []
    if block.parse == "lines":
        lines = [re.sub(r"^\s*(?:\d+[.)]|[-*])\s*", "", x).strip() for x in text.splitlines()]
        return [{block.output: x} for x in lines if x]
    if block.parse == "rating":
        low, high = block.scale or (-math.inf, math.inf)
        found = (int(m.group()) for m in re.finditer(r"-?\d+", text))
        rating = next((x for x in found if low <= x <= high), None)
        return [] if rating is None else [{block.output: rating}]
    found = list(re.finditer(block.pattern, text, flags=re.DOTALL))
    out = []
    for m in found:
        cols = {k: v.strip() for k, v in m.groupdict().items() if v is not None}
        if block.output and not cols:
            cols = {block.output: (m.group(1) if m.groups() else m.group()).strip()}
        if all(str(v) for v in cols.values()) and cols:
            out.append(cols)
    return out


def _seed(sample: str, block: str) -> int:
    return int(hashlib.sha256(f"{sample}|{block}".encode()).hexdigest()[:8], 16)


@dataclass
class Flow:
    name: str
    blocks: list[Block]
    description: str = ""
    source: str = ""

    def run(self, rows: list[dict], chat_many: ChatMany) -> tuple[list[dict], FlowStats]:
        """Every row (with a ``_sample`` id) through every block."""
        stats = FlowStats()
        for block in self.blocks:
            n_in = len(rows)
            if block.type == "llm":
                rows = self._llm(block, rows, chat_many)
            elif block.type == "filter":
                op = OPS[block.op]
                rows = [r for r in rows if block.column in r and op(r[block.column], block.value)]
            else:  # dedupe
                seen, kept = set(), []
                for r in rows:
                    key = (r[SAMPLE].split(".")[0], str(r.get(block.column)).strip().lower())
                    if key not in seen:
                        seen.add(key)
                        kept.append(r)
                rows = kept
            stats.add(block.name, n_in, len(rows))
        return rows, stats

    def _llm(self, block: Block, rows: list[dict], chat_many: ChatMany) -> list[dict]:
        requests = []
        for r in rows:
            try:
                prompt = block.prompt.format_map(r)
            except (KeyError, IndexError, ValueError) as e:
                raise ConfigError(
                    f"flow {self.name!r} ({self.source}), block {block.name!r}: the prompt "
                    f"uses {e} which the rows do not have (columns: {sorted(r)})"
                ) from None
            messages = [{"role": "system", "content": block.system}] if block.system else []
            messages.append({"role": "user", "content": prompt})
            requests.append(
                {"messages": messages, "n": block.n, "temperature": block.temperature,
                 "max_tokens": block.max_tokens, "seed": _seed(r[SAMPLE], block.name)}
            )  # fmt: skip
        replies = chat_many(requests)
        out = []
        for r, texts in zip(rows, replies, strict=True):
            j = 0
            for text in texts:
                for cols in parse_reply(text, block):
                    out.append({**r, **cols, SAMPLE: f"{r[SAMPLE]}.{j}"})
                    j += 1
        return out

    def explain_empty(self, stats: FlowStats, what: str) -> EmptyResultError:
        """The error for a run that kept nothing: the first block that left no row."""
        for block in self.blocks:
            n_in, n_out = stats.rows_in.get(block.name, 0), stats.rows_out.get(block.name, 0)
            if n_out == 0:
                rates = ", ".join(f"{k} {v:.0%}" for k, v in stats.pass_rates().items())
                if block.type == "llm":
                    why = (f"no reply of the teacher to block {block.name!r} could be parsed "
                           f"as {block.parse} ({n_in} rows went in)")  # fmt: skip
                else:
                    value = "" if block.op == "nonempty" else f" {block.value!r}"
                    cond = f"{block.column} {block.op}{value}"
                    why = f"filter {block.name!r} ({cond}) kept 0 of the {n_in} rows reaching it"
                return EmptyResultError(
                    f"{what}: flow {self.name!r} produced no data: {why}. Pass rates: {rates}. "
                    "Try a stronger teacher model, more samples per seed (--num-samples), or "
                    "a copy of the flow with a looser filter (--flow FILE); nothing was "
                    "written as a result."
                )
        return EmptyResultError(f"{what}: flow {self.name!r} had no input rows")


def builtin_flow_path(name: str) -> Path:
    return Path(str(resources.files("burnish.sdg") / "flows" / f"{name}.yaml"))


def _is_scale(scale: Any) -> bool:
    ints = isinstance(scale, list) and all(type(x) is int for x in scale)
    return ints and len(scale) == 2 and scale[0] <= scale[1]


def _block(raw: Any, i: int, where: str) -> Block:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: block {i + 1} must be a mapping")
    known = set(Block.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: block {i + 1} has unknown key(s) {unknown}")
    try:
        b = Block(**raw)
    except TypeError as e:
        raise ConfigError(f"{where}: block {i + 1}: {e}") from None
    name = f"block {i + 1} ({b.name!r})"
    if b.type == "llm":
        if not b.prompt or b.parse not in PARSERS:
            raise ConfigError(f"{where}: {name} needs a prompt and parse in {PARSERS}")
        if b.parse == "regex" and not b.pattern:
            raise ConfigError(f"{where}: {name} parses by regex but has no pattern")
        if b.parse != "regex" and not b.output:
            raise ConfigError(f"{where}: {name} needs `output` (the column its reply goes to)")
        if b.n < 1:
            raise ConfigError(f"{where}: {name}: n must be at least 1")
        if b.scale is not None and not _is_scale(b.scale):
            raise ConfigError(f"{where}: {name}: scale must be [low, high], integers, low <= high")
    elif b.type == "filter":
        if not b.column or b.op not in OPS:
            raise ConfigError(f"{where}: {name} needs a column and op in {list(OPS)}")
    elif b.type == "dedupe":
        if not b.column:
            raise ConfigError(f"{where}: {name} needs a column")
    else:
        raise ConfigError(f"{where}: {name} has type {b.type!r}; use llm, filter or dedupe")
    return b


def load_flow(name_or_path: str | Path) -> Flow:
    """A built-in flow by name (:data:`BUILTIN_FLOWS`) or a flow file."""
    path = Path(name_or_path)
    if str(name_or_path) in BUILTIN_FLOWS:
        path = builtin_flow_path(str(name_or_path))
    elif not path.is_file():
        raise ConfigError(
            f"{name_or_path}: no such flow file or built-in flow ({', '.join(BUILTIN_FLOWS)})"
        )
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the flow ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("blocks"), list) or not doc["blocks"]:
        raise ConfigError(f"{path}: a flow is a mapping with a non-empty `blocks` list")
    blocks = [_block(b, i, str(path)) for i, b in enumerate(doc["blocks"])]
    names = [b.name for b in blocks]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: block names must be unique, got {names}")
    return Flow(str(doc.get("name", path.stem)), blocks, str(doc.get("description", "")), str(path))
