"""Taxonomy leaves: validation agrees with instructlab-schema's own parser on valid and invalid
leaves, problems name their line and field, ``--diff`` picks the changed leaves, and knowledge
documents are found and chunked by a tokenizer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from burnish.errors import DataError
from burnish.sdg import (
    TaxonomyError,
    changed_leaves,
    chunk_text,
    leaf_documents,
    read_leaf,
    read_taxonomy,
    validate_leaf,
)

EXAMPLES = Path(__file__).parents[2] / "examples" / "taxonomy"
SKILL = "compositional_skills/arithmetic/addition/qna.yaml"
KNOWLEDGE = "knowledge/astronomy/lanternfish_observatory/qna.yaml"


def instructlab_errors(path: Path) -> int:
    """Errors InstructLab's parser finds (it raises on text that is not YAML: one error)."""
    from instructlab.schema.taxonomy import TaxonomyParser, TaxonomyReadingException

    try:
        return TaxonomyParser(message_format="LOGGING").parse(path).errors
    except TaxonomyReadingException:
        return 1


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "taxonomy"
    shutil.copytree(EXAMPLES, root)
    return root


def edit(path: Path, change) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_the_example_leaves_are_valid_for_both(tree: Path) -> None:
    leaves = read_taxonomy(tree)
    assert len(leaves) == 7
    assert {leaf.kind for leaf in leaves} == {"freeform_skill", "knowledge"}
    for leaf in leaves:
        assert instructlab_errors(leaf.path) == 0
        assert len(leaf.seeds) >= 5


def _drop(key):
    return lambda d: d.pop(key)


CASES = {
    "missing field": (SKILL, _drop("task_description"), "task_description", "missing required"),
    "too few seed examples": (
        SKILL,
        lambda d: d.update(seed_examples=d["seed_examples"][:4]),
        "seed_examples",
        "at least 5",
    ),
    "wrong version": (SKILL, lambda d: d.update(version=2), "version", "version 3"),
    "too few questions": (
        KNOWLEDGE,
        lambda d: d["seed_examples"][1].update(
            questions_and_answers=d["seed_examples"][1]["questions_and_answers"][:2]
        ),
        "seed_examples[1].questions_and_answers",
        "at least 3",
    ),
    "unknown field": (SKILL, lambda d: d.update(colour="blue"), "colour", "unknown field"),
    "empty answer": (
        SKILL,
        lambda d: d["seed_examples"][2].update(answer=""),
        "seed_examples[2].answer",
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_leaves_agree_with_instructlab(tree: Path, case: str) -> None:
    rel, change, field, words = CASES[case]
    path = tree / rel
    edit(path, change)
    issues = validate_leaf(path, tree)
    assert issues and instructlab_errors(path) > 0
    assert issues[0].field == field and words in issues[0].message
    text = path.read_text().splitlines()
    key = field.rsplit(".", 1)[-1].split("[")[0]
    if key not in (".", "version") and case != "missing field":
        assert key in text[issues[0].line - 1]  # the line named is the field's own line


def test_yaml_errors_name_the_line(tree: Path) -> None:
    path = tree / SKILL
    lines = path.read_text().splitlines()
    lines[3] = lines[3] + " : : ["
    path.write_text("\n".join(lines) + "\n")
    issues = validate_leaf(path, tree)
    assert issues and issues[0].line == 4
    assert instructlab_errors(path) > 0


def test_one_line_per_bad_file(tree: Path) -> None:
    edit(tree / SKILL, _drop("created_by"))
    edit(tree / KNOWLEDGE, _drop("domain"))
    with pytest.raises(TaxonomyError) as e:
        read_taxonomy(tree)
    lines = str(e.value).splitlines()
    assert lines[0].startswith("2 invalid taxonomy leaf file(s)")
    assert len(lines) == 3
    assert "addition/qna.yaml:1: `created_by`: missing required field" in lines[1]
    assert "lanternfish_observatory/qna.yaml:1: `domain`" in lines[2]
    with pytest.raises(TaxonomyError, match="created_by"):
        read_leaf(tree / SKILL, tree)


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def test_diff_selects_changed_and_new_leaves(tree: Path) -> None:
    git(tree, "init", "-q")
    git(tree, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    git(tree, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base")
    edit(tree / SKILL, lambda d: d.update(task_description="Add two numbers."))
    new = tree / "compositional_skills" / "arithmetic" / "doubling" / "qna.yaml"
    new.parent.mkdir()
    shutil.copy(tree / SKILL, new)
    assert changed_leaves(tree, "HEAD") == sorted([(tree / SKILL).resolve(), new.resolve()])
    names = [leaf.name for leaf in read_taxonomy(tree, diff="HEAD")]
    assert names == ["compositional_skills/arithmetic/addition",
                     "compositional_skills/arithmetic/doubling"]  # fmt: skip
    with pytest.raises(DataError, match="no-such-ref"):
        changed_leaves(tree, "no-such-ref")


def test_knowledge_documents_and_chunks(tree: Path, tok) -> None:
    leaf = read_leaf(tree / KNOWLEDGE, tree)
    docs = leaf_documents(leaf)
    assert [d.name for d in docs] == ["lanternfish.md"]
    count = lambda t: len(tok(t, add_special_tokens=False)["input_ids"])  # noqa: E731
    chunks = chunk_text(docs[0].text, count, 400)
    assert len(chunks) > 1 and all(count(c) <= 400 for c in chunks)
    assert " ".join(" ".join(chunks).split()) == " ".join(docs[0].text.split())
    edit(tree / KNOWLEDGE, lambda d: d["document"].update(patterns=["*.pdf"]))
    with pytest.raises(DataError, match=r"matches `document\.patterns`"):
        leaf_documents(read_leaf(tree / KNOWLEDGE, tree))
