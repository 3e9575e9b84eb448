"""An InstructLab taxonomy: the tree of ``qna.yaml`` leaves, validated against InstructLab's
own published JSON schemas (the ``instructlab-schema`` package), as its ``TaxonomyParser``
does by default: the newest schema version in the package, yamllint's errors (the relaxed
rules without line length), and the schema by folder (``compositional_skills`` /
``knowledge``; elsewhere, a leaf with a ``document`` is knowledge).

A leaf is a *knowledge* leaf, a *grounded skill* (seed examples with a ``context``) or a
*freeform skill*. :func:`read_taxonomy` reads every leaf under a root, or only those changed
against a git ref (``changed_leaves``: the diff to the ref plus untracked files), and raises
one :class:`TaxonomyError` naming each bad file once, with the line and field of its first
problem.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from burnish.errors import DataError

__all__ = [
    "KINDS",
    "DocumentRef",
    "Leaf",
    "LeafIssue",
    "SeedExample",
    "TaxonomyError",
    "changed_leaves",
    "find_leaves",
    "read_leaf",
    "read_taxonomy",
    "validate_leaf",
]

KINDS = ("freeform_skill", "grounded_skill", "knowledge")
LEAF_FILE = "qna.yaml"
SCHEMA_FOLDERS = ("compositional_skills", "knowledge")
# InstructLab's yamllint settings (instructlab.schema.taxonomy.DEFAULT_YAMLLINT_CONFIG).
YAMLLINT_CONFIG = "{extends: relaxed, rules: {line-length: disable}}"


class TaxonomyError(DataError):
    """One or more leaves are invalid; the message has one line per bad file."""


@dataclass(frozen=True)
class LeafIssue:
    path: Path
    line: int
    field: str  # a dotted path into the document ("seed_examples[2].answer"; "." the root)
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: `{self.field}`: {self.message}"


@dataclass(frozen=True)
class SeedExample:
    question: str
    answer: str
    context: str | None = None


@dataclass(frozen=True)
class DocumentRef:
    repo: str
    commit: str
    patterns: tuple[str, ...]


@dataclass
class Leaf:
    """A valid leaf. ``name`` is its folder relative to the taxonomy root (``/``-joined)."""

    path: Path
    name: str
    kind: str
    description: str  # a skill's task_description; a knowledge leaf's domain
    created_by: str
    seeds: list[SeedExample]  # knowledge: one per question, with its context
    document: DocumentRef | None = None
    outline: str | None = None
    version: int = 3
    contents: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "kind": self.kind,
            "description": self.description,
            "seed_examples": len(self.seeds),
            "document": None if self.document is None else asdict(self.document),
        }


# ---- schema validation ----------------------------------------------------------------------


@functools.cache
def _schemas() -> tuple[int, Any]:
    """(newest schema version, a registry retrieving that version's schema files)."""
    try:
        from instructlab.schema import schema_base, schema_versions
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012
    except ImportError as e:
        raise DataError(
            f"validating a taxonomy needs the instructlab-schema package ({e}); "
            "pip install instructlab-schema"
        ) from None
    version = int(schema_versions()[-1].name[1:])
    base = schema_base() / f"v{version}"

    def retrieve(uri: str) -> Any:
        text = (base / uri.removeprefix("./")).read_text(encoding="utf-8")
        return Resource.from_contents(json.loads(text), default_specification=DRAFT202012)

    return version, Registry(retrieve=retrieve)


def _schema_name(relative: Path, contents: Mapping) -> str:
    top = relative.parts[0] if relative.parts else ""
    if top in SCHEMA_FOLDERS:
        return top
    return "knowledge" if "document" in contents else "compositional_skills"


def _node_line(root: yaml.Node | None, where: Iterable[str | int]) -> int:
    """1-based line of the YAML node at ``where`` (keys and indices), or of the deepest
    node found on the way."""
    node, line = root, 1 if root is None else root.start_mark.line + 1
    for step in where:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            hit = next(((k, v) for k, v in node.value if k.value == step), None)
            if hit is None:
                break
            line, node = hit[0].start_mark.line + 1, hit[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step >= len(node.value):
                break
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _field(where: Iterable[str | int]) -> str:
    out = ""
    for step in where:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out or "."


def _schema_issues(path: Path, contents: Mapping, node: yaml.Node, schema: str) -> list[LeafIssue]:
    from jsonschema.validators import validator_for

    version, registry = _schemas()
    top = registry.get_or_retrieve(f"{schema}.json").value.contents
    validator = validator_for(top)(top, registry=registry)
    issues = []
    errors = sorted(validator.iter_errors(contents), key=lambda e: list(map(str, e.absolute_path)))
    for e in errors:
        where = list(e.absolute_path)
        if e.validator == "required":
            missing = [k for k in e.validator_value if k not in (e.instance or {})]
            where_field = _field([*where, missing[0]]) if missing else _field(where)
            message = f"missing required field `{missing[0] if missing else '?'}`"
            issues.append(LeafIssue(path, _node_line(node, where), where_field, message))
            continue
        extra = re.findall(r"'([^']+)'", e.message) if e.validator.startswith("unevaluated") else []
        if extra:  # an unknown key: point at it
            at = [*where, extra[0]]
            message = f"unknown field `{extra[0]}` (not in the schema; remove or rename it)"
            issues.append(LeafIssue(path, _node_line(node, at), _field(at), message))
            continue
        if e.validator == "minItems":
            message = f"needs at least {e.validator_value} items, has {len(e.instance)}"
        elif e.validator == "const" and where == ["version"]:
            message = f"schema version {e.instance!r} is not supported; use version {version}"
        else:
            message = e.message[-200:]
        issues.append(LeafIssue(path, _node_line(node, where), _field(where), message))
    return issues


def _lint_issues(path: Path, text: str) -> list[LeafIssue]:
    try:
        from yamllint import linter
        from yamllint.config import YamlLintConfig
    except ImportError:
        return []  # yamllint comes with instructlab-schema; the schema check still runs
    return [
        LeafIssue(path, p.line, "yaml", f"{p.desc} ({p.rule})" if p.rule else p.desc)
        for p in linter.run(text, YamlLintConfig(YAMLLINT_CONFIG))
        if p.level == "error"
    ]


def validate_leaf(path: str | Path, root: str | Path | None = None) -> list[LeafIssue]:
    """Every problem of one ``qna.yaml`` (empty when valid), ordered by line."""
    return _check(Path(path), root)[0]


def _check(path: Path, root: str | Path | None) -> tuple[list[LeafIssue], dict | None]:
    """(the problems, ordered by line; the parsed document when it has none)."""
    relative = _relative(path, Path(root) if root else None)
    if path.name != LEAF_FILE:
        return [LeafIssue(path, 1, ".", f"a taxonomy leaf is a file named {LEAF_FILE}")], None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return [LeafIssue(path, 1, ".", f"cannot read the file ({e})")], None
    issues = _lint_issues(path, text)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        contents = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        if not any(i.line == line for i in issues):
            issues.append(LeafIssue(path, line, "yaml", f"not valid YAML ({e})"))
        return sorted(issues, key=lambda i: i.line), None
    if not contents:
        return [*issues, LeafIssue(path, 1, ".", "the file is empty")], None
    if not isinstance(contents, Mapping):
        return [*issues, LeafIssue(path, 1, ".", "the top level must be a mapping of fields")], None
    issues += _schema_issues(path, contents, node, _schema_name(relative, contents))
    return sorted(issues, key=lambda i: i.line), None if issues else dict(contents)


# ---- reading --------------------------------------------------------------------------------


def _relative(path: Path, root: Path | None) -> Path:
    """The leaf's path from its taxonomy root (or from its last schema folder)."""
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve())
        except ValueError:
            pass
    parts = path.resolve().parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in SCHEMA_FOLDERS:
            return Path(*parts[i:])
    return Path(path.name)


def _build(path: Path, root: Path, contents: dict) -> Leaf:
    name = _relative(path, root).parent.as_posix()
    common = {"path": path, "name": name, "created_by": contents["created_by"]}
    common |= {"version": contents["version"], "contents": contents}
    if _schema_name(_relative(path, root), contents) == "knowledge":
        seeds = [
            SeedExample(qa["question"].strip(), qa["answer"].strip(), ex["context"].strip())
            for ex in contents["seed_examples"]
            for qa in ex["questions_and_answers"]
        ]
        doc = contents["document"]
        ref = DocumentRef(doc["repo"], doc["commit"], tuple(doc["patterns"]))
        outline = contents["document_outline"].strip()
        domain = contents["domain"].strip()
        return Leaf(kind="knowledge", description=domain, seeds=seeds, document=ref,
                    outline=outline, **common)  # fmt: skip
    seeds = []
    for ex in contents["seed_examples"]:
        context = (ex.get("context") or "").strip() or None
        seeds.append(SeedExample(ex["question"].strip(), ex["answer"].strip(), context))
    kind = "grounded_skill" if any(s.context for s in seeds) else "freeform_skill"
    return Leaf(kind=kind, description=contents["task_description"].strip(), seeds=seeds, **common)


def read_leaf(path: str | Path, root: str | Path | None = None) -> Leaf:
    """One valid leaf; TaxonomyError naming the line and field of its first problem."""
    path = Path(path)
    issues, contents = _check(path, root)
    if issues:
        raise TaxonomyError(_describe(path, issues))
    return _build(path, Path(root) if root else path.parent, contents)


def _describe(path: Path, issues: list[LeafIssue]) -> str:
    more = f" (and {len(issues) - 1} more problem(s) in this file)" if len(issues) > 1 else ""
    return f"{issues[0]}{more}"


def find_leaves(root: str | Path) -> list[Path]:
    """Every ``qna.yaml`` under ``root``, sorted; DataError when there is none."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; give the root of a taxonomy tree")
    leaves = sorted(p for p in root.rglob(LEAF_FILE) if p.is_file() and ".git" not in p.parts)
    if not leaves:
        raise DataError(f"{root}: no {LEAF_FILE} leaf found under this folder")
    return leaves


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise DataError("--diff needs git on the PATH") from None
    if out.returncode != 0:
        raise DataError(f"git {' '.join(args)} in {root}: {out.stderr.strip() or 'failed'}")
    return out.stdout


def changed_leaves(root: str | Path, ref: str) -> list[Path]:
    """The leaves under ``root`` that differ from git ref ``ref`` (changed, added, staged or
    not) or are untracked; deleted leaves are left out."""
    root = Path(root).resolve()
    top = Path(_git(root, "rev-parse", "--show-toplevel").strip())
    _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    names = _git(top, "diff", "--name-only", ref, "--", str(root)).splitlines()
    names += _git(top, "ls-files", "--others", "--exclude-standard", "--", str(root)).splitlines()
    paths = {(top / n).resolve() for n in names if Path(n).name == LEAF_FILE}
    return sorted(p for p in paths if p.is_file())


def read_taxonomy(root: str | Path, diff: str | None = None) -> list[Leaf]:
    """Every leaf under ``root`` (or only those changed against git ref ``diff``), validated;
    TaxonomyError with one line per bad file."""
    root = Path(root)
    paths = changed_leaves(root, diff) if diff else find_leaves(root)
    problems, leaves = [], []
    for path in paths:
        issues, contents = _check(path, root)
        if issues:
            problems.append(_describe(path, issues))
        else:
            leaves.append(_build(path, root, contents))
    if problems:
        head = f"{len(problems)} invalid taxonomy leaf file(s) (fix each, then rerun):"
        raise TaxonomyError("\n".join([head, *problems]))
    return leaves
