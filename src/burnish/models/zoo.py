"""The zoo registry: tiny trained checkpoints shipped as package data under burnish/zoo/.

Anywhere burnish takes a model, a zoo name (``base``, ``arith-policy``, ...) works as well as
a directory path. A path always wins over a zoo name.
"""

from __future__ import annotations

import json
from pathlib import Path

from burnish.errors import ModelLoadError

__all__ = ["ZOO_DIR", "list_zoo", "resolve_model", "zoo_card"]

ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"


def list_zoo() -> list[str]:
    """Names of the shipped zoo models (directories holding a config.json)."""
    if not ZOO_DIR.is_dir():
        return []
    return sorted(p.name for p in ZOO_DIR.iterdir() if (p / "config.json").is_file())


def resolve_model(name_or_path: str | Path) -> Path:
    """A model directory for a path, a zoo name, a ``.gguf`` file or a known real model's
    name (:data:`burnish.models.gguf.KNOWN_GGUF`; the last two are imported into the cache
    once); errors list the zoo and the known names when it is none of these."""
    from burnish.models.gguf import KNOWN_GGUF, import_gguf

    p = Path(name_or_path).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return import_gguf(p)
    if p.exists():
        return p
    if (ZOO_DIR / str(name_or_path) / "config.json").is_file():
        return ZOO_DIR / str(name_or_path)
    if str(name_or_path) in KNOWN_GGUF:
        return import_gguf(str(name_or_path))
    zoo = ", ".join(list_zoo()) or "(none built; run `burnish zoo build`)"
    raise ModelLoadError(
        f"{name_or_path}: no such model directory, not a zoo model ({zoo}) and not a known "
        f"real model ({', '.join(KNOWN_GGUF)})"
    )


def zoo_card(name: str) -> dict:
    """The machine-readable card (card.json) of a zoo model."""
    path = resolve_model(name) / "card.json"
    if not path.is_file():
        raise ModelLoadError(f"{path.parent}: no card.json (not a zoo model?)")
    return json.loads(path.read_text())
