"""A knowledge leaf's documents, and chunks of them sized by the teacher's tokenizer.

``document.repo`` is a local folder (absolute, or relative to the leaf's folder) or a git
repository (cloned once into the cache at ``document.commit``); ``--docs DIR`` overrides it
with a local copy. ``document.patterns`` are globs inside it.

Chunks follow the text's paragraphs: paragraphs are joined while the chunk stays within
``max_tokens`` of the teacher's tokenizer; a longer paragraph is split at sentence ends, and
a longer sentence at token boundaries.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from burnish.errors import DataError
from burnish.sdg.taxonomy import Leaf

__all__ = ["Document", "chunk_text", "document_root", "leaf_documents", "token_counter"]

TEXT_SUFFIXES = (".md", ".txt", ".rst")


@dataclass(frozen=True)
class Document:
    name: str  # the file's path inside the document root
    text: str


def _is_remote(repo: str) -> bool:
    return "://" in repo or repo.startswith("git@")


def _cache() -> Path:
    return Path(os.environ.get("BURNISH_CACHE", Path.home() / ".cache" / "burnish")) / "documents"


def _clone(repo: str, commit: str, where: str) -> Path:
    target = _cache() / hashlib.sha256(f"{repo}@{commit}".encode()).hexdigest()[:16]
    if (target / ".git").is_dir():
        return target
    tmp = target.with_name(target.name + ".partial")
    cmds = [
        ["git", "clone", "--quiet", repo, str(tmp)],
        ["git", "-C", str(tmp), "checkout", "--quiet", commit],
    ]
    for cmd in cmds:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            raise DataError(f"{where}: fetching the documents needs git on the PATH") from None
        if out.returncode != 0:
            raise DataError(
                f"{where}: cannot fetch the documents from {repo} at {commit} "
                f"({out.stderr.strip()}); pass --docs DIR with a local copy"
            )
    tmp.rename(target)
    return target


def document_root(leaf: Leaf, docs: Path | None = None) -> Path:
    """The folder the leaf's patterns apply to."""
    if leaf.document is None:
        raise DataError(f"{leaf.path}: not a knowledge leaf (no `document`)")
    if docs is not None:
        if not docs.is_dir():
            raise DataError(f"--docs {docs}: not a folder")
        return docs
    repo = leaf.document.repo
    if _is_remote(repo):
        return _clone(repo, leaf.document.commit, str(leaf.path))
    local = Path(repo).expanduser()
    local = local if local.is_absolute() else leaf.path.parent / local
    if not local.is_dir():
        raise DataError(
            f"{leaf.path}: `document.repo` {repo!r} is neither a URL nor a folder "
            f"(looked for {local}); fix it or pass --docs DIR"
        )
    return local


def leaf_documents(leaf: Leaf, docs: Path | None = None) -> list[Document]:
    """The text files matching the leaf's patterns, sorted by name."""
    root = document_root(leaf, docs)
    files = sorted({p for pat in leaf.document.patterns for p in root.glob(pat) if p.is_file()})
    if not files:
        pats = ", ".join(leaf.document.patterns)
        raise DataError(f"{leaf.path}: no file in {root} matches `document.patterns` ({pats})")
    out = []
    for f in files:
        if f.suffix.lower() not in TEXT_SUFFIXES:
            raise DataError(
                f"{f}: only text documents ({', '.join(TEXT_SUFFIXES)}) are read; convert it "
                "to Markdown first"
            )
        out.append(Document(f.relative_to(root).as_posix(), f.read_text(encoding="utf-8")))
    return out


def token_counter(tokenizer) -> Callable[[str], int]:
    """Tokens of a text under ``tokenizer`` (no special tokens)."""
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _pieces(text: str, count: Callable[[str], int], max_tokens: int) -> list[str]:
    """``text`` cut into pieces of at most ``max_tokens``: sentences, then words."""
    if count(text) <= max_tokens:
        return [text]
    sentences = re.split(r"(?<=[.!?])\s+", text)
    if len(sentences) == 1:
        words, out, cur = text.split(), [], []
        for w in words:
            if cur and count(" ".join([*cur, w])) > max_tokens:
                out.append(" ".join(cur))
                cur = []
            cur.append(w)
        return out + ([" ".join(cur)] if cur else [])
    return [p for s in sentences for p in _pieces(s, count, max_tokens)]


def chunk_text(text: str, count: Callable[[str], int], max_tokens: int) -> list[str]:
    """Paragraph-aligned chunks of at most ``max_tokens`` each (see the module doc)."""
    if max_tokens < 8:
        raise DataError(f"chunks need at least 8 tokens, got max_tokens={max_tokens}")
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    pieces = [q for p in paragraphs for q in _pieces(p, count, max_tokens)]
    chunks: list[str] = []
    for piece in pieces:
        joined = f"{chunks[-1]}\n\n{piece}" if chunks else piece
        if chunks and count(joined) <= max_tokens:
            chunks[-1] = joined
        else:
            chunks.append(piece)
    return chunks
