"""Small file helpers shared by every command: safe outputs, atomic writes and JSONL.

Two rules hold for everything burnish writes:

- Nothing half-written is ever left under a final name: files and directories are written
  under a temporary sibling name and renamed into place only when complete; an exception
  (Ctrl-C and SIGTERM included) removes the temporary.
- Nothing burnish did not write is deleted or replaced. An existing output is refused unless
  the caller passes ``overwrite`` (or ``resume``); even then only the files burnish writes are
  replaced (:func:`atomic_dir` moves its new entries into an existing folder and leaves every
  other file there alone).

Outputs follow the umask like any tool (``mkstemp``/``mkdtemp`` would make them 0600/0700).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from burnish.errors import DataError, OutputExistsError

__all__ = [
    "MODEL_WEIGHT_FILES",
    "append_jsonl",
    "atomic_dir",
    "atomic_file",
    "atomic_write_text",
    "check_output_dir",
    "check_output_file",
    "read_jsonl",
    "remove_owned",
    "write_jsonl",
]

# What a model directory's weights are made of: stale ones (e.g. the shards of an earlier,
# larger save) are removed when a new save replaces them, so a loader never mixes the two.
MODEL_WEIGHT_FILES = ("*.safetensors", "*.safetensors.index.json")


# ---------------------------------------------------------------- permissions and signals


def _umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _follow_umask(path: str | Path, is_dir: bool) -> None:
    """Give a temporary made by mkstemp/mkdtemp the mode a plain open/mkdir would have."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


@contextmanager
def _signals_held() -> Iterator[None]:
    """Delay SIGINT/SIGTERM while a few renames commit an output (delivered right after)."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):  # no pthread_sigmask, or not main thread
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# ---------------------------------------------------------------- refusing existing outputs


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def check_output_file(path: str | Path, overwrite: bool = False, flag: str = "--overwrite") -> Path:
    """Refuse to write the file ``path`` over something that exists, unless ``overwrite``.

    A directory at ``path`` is always refused. Returns ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{path}: is a folder; give a file name for this output")
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{path}: already exists; pass {flag} to replace it, or choose another path"
        )
    return path


def check_output_dir(
    path: str | Path,
    overwrite: bool = False,
    resume: bool | None = None,
    what: str = "output folder",
) -> Path:
    """Refuse a non-empty output folder unless ``overwrite`` (or ``resume``, where offered).

    ``resume=None`` means the command cannot resume (the advice names --overwrite only).
    A file at ``path`` is always refused. Returns ``path``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: is a file, not a folder; give a folder for the {what}")
    if _is_nonempty_dir(path) and not (overwrite or resume):
        how = "--resume to continue it, --overwrite" if resume is not None else "--overwrite"
        raise OutputExistsError(
            f"{path}: the {what} already exists and is not empty; pass {how} to replace what "
            "burnish writes there (other files are kept), or choose another path"
        )
    return path


def remove_owned(folder: Path, patterns: Sequence[str]) -> list[str]:
    """Delete the entries of ``folder`` whose names match ``patterns`` (what a command itself
    writes there, e.g. ``metrics.jsonl`` or ``checkpoints``); others stay. Returns the names."""
    if not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.iterdir()):
        if any(fnmatch.fnmatch(entry.name, p) for p in patterns):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry.name)
    return removed


# ---------------------------------------------------------------- atomic writes


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write (e.g. ``savefig``, ``save_file``);
    it replaces ``path`` when the block finishes and is removed if the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with _signals_held():
        try:
            _follow_umask(tmp, is_dir=False)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same directory and a rename."""
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


@contextmanager
def atomic_dir(path: str | Path, stale: Sequence[str] = ()) -> Iterator[Path]:
    """Yield a temporary directory whose contents land at ``path`` when the block finishes.

    On any exception (Ctrl-C and SIGTERM included) the temporary directory is removed and
    ``path`` is left untouched. When ``path`` already exists, each new entry replaces the
    entry of the same name (one rename each) and the other entries stay, except those that
    match ``stale`` (e.g. :data:`MODEL_WEIGHT_FILES`: weights of an earlier save that the new
    one does not have), which are removed. Callers refuse an existing ``path`` they did not
    write first (:func:`check_output_dir`).
    """
    path = Path(os.path.abspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        with _signals_held():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    with _signals_held():
        try:
            _follow_umask(tmp, is_dir=True)
            _commit_dir(tmp, path, stale)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _commit_dir(tmp: Path, path: Path, stale: Sequence[str]) -> None:
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: is a file, not a folder; give a folder for this output")
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
    if not path.exists():
        os.replace(tmp, path)
        return
    new = {entry.name for entry in tmp.iterdir()}
    for entry in sorted(path.iterdir()):
        if entry.name not in new and any(fnmatch.fnmatch(entry.name, p) for p in stale):
            entry.unlink()
    for entry in sorted(tmp.iterdir()):
        dest = path / entry.name
        if entry.is_dir() and dest.is_dir():
            _commit_dir(entry, dest, stale)
        else:
            if dest.is_dir():
                shutil.rmtree(dest)
            os.replace(entry, dest)


# ---------------------------------------------------------------- JSONL


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file of objects; a bad line raises DataError naming file and line number."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file (expected a JSONL file, one object a line)")
    rows: list[dict[str, Any]] = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{lineno}: not UTF-8 text (byte {raw[e.start]:#04x} at column "
                    f"{e.start + 1}); re-save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})"
                ) from None
            if not isinstance(row, dict):
                raise DataError(
                    f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}"
                )
            rows.append(row)
    return rows


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows as JSONL atomically."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return atomic_write_text(path, text)


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row (metrics logs); flushed so a killed run keeps every finished line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
