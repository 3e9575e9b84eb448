"""Lazy package attributes: the names a package exports, imported on first use.

``__getattr__ = lazy_attributes(__name__, {"run_sft": "burnish.train.sft", ...})`` keeps
``import burnish.<package>`` cheap (no torch) while ``burnish.<package>.run_sft`` still works.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``homes[name]`` (a module path) for ``name``."""

    def __getattr__(name: str) -> Any:
        if name in homes:
            return getattr(importlib.import_module(homes[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
