"""Training: shared step pieces, distributed helpers, checkpoints, and the recipes.

The configs are cheap to import (pydantic only); the recipes (torch) load on first use, so
the CLI can build its ``--help`` without importing torch.
"""

from __future__ import annotations

from burnish.lazy import lazy_attributes
from burnish.train.config import OSFTConfig, SFTConfig

__all__ = [
    "OSFTConfig",
    "SFTConfig",
    "SFTResult",
    "run_sft",
]

# ``burnish.train.sft`` is the recipe's module; its Python entry point is
# ``burnish.train.sft.sft`` (also ``burnish.sft``).
_LAZY = {"SFTResult": "burnish.train.sft", "run_sft": "burnish.train.sft"}


__getattr__ = lazy_attributes(__name__, _LAZY)
