"""Building the zoo: every shipped tiny model (language models, the PRM), from seed.

The one home of zoo building, above ``train`` and ``scaling`` (it uses both; neither imports
it). ``burnish zoo build`` is its command line. The specs are cheap to import; the builders
(torch) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from burnish.zoo_build.specs import CHECK_SAMPLE, PRM_NAME, ZOO_SPECS, PRMSpec, ZooSpec

__all__ = [
    "CHECK_SAMPLE",
    "PRM_FITS",
    "PRM_NAME",
    "ZOO_SPECS",
    "PRMSpec",
    "ZooSpec",
    "build_arith_prm",
    "build_zoo",
    "build_zoo_model",
    "finetune_zoo_model",
]

_HOMES = {
    "PRM_FITS": "prm_fit",
    "build_arith_prm": "prm",
    "build_zoo": "build",
    "build_zoo_model": "lm",
    "finetune_zoo_model": "lm",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"burnish.zoo_build.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'burnish.zoo_build' has no attribute {name!r}")
