"""Config loading shared by every command: YAML files, KEY=VALUE overrides, one-line errors.

At the bottom of the package (pydantic and YAML only), so every method family's config
(training, merging, ...) loads the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from burnish.errors import ConfigError

__all__ = ["load_config", "parse_overrides"]

C = TypeVar("C", bound=BaseModel)


def _format_validation(e: ValidationError, source: str) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return f"{source}: " + "; ".join(parts)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["lr=1e-3", "epochs=2"]`` -> ``{"lr": 0.001, "epochs": 2}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. lr=1e-4")
        out[key.strip().replace("-", "_")] = _parse_value(value) if value else None
    return out


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _parse_value(value: str) -> Any:
    # YAML 1.1 (PyYAML) reads an unquoted 1e-3 as a string; take it as the number it means.
    if _FLOAT.fullmatch(value.strip()):
        return float(value)
    return yaml.safe_load(value)


def load_config(
    cls: type[C], path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> C:
    """Build ``cls`` from an optional YAML file plus overrides; errors name file and key."""
    values: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
        values.update(loaded or {})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return cls(**values)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, source)) from None
