"""Compression: Hopscotch (skip redundant attention blocks, rescale the rest).

The model structure (scaled, skippable layers; ``hopscotch.json``) is in
:mod:`burnish.models.skipping`, so every command loads a hopscotch checkpoint with its
savings; this package holds the method: calibration data (:mod:`.data`), scale fitting
(:mod:`.scales`), block selection and baselines (:mod:`.select`), folding into a stock
checkpoint (:mod:`.fold`) and the command's shell (:mod:`.run`).
"""

from burnish.compress.fold import fold_scales
from burnish.compress.run import HopscotchConfig, export_plain, run_hopscotch
from burnish.compress.select import (
    SELECTORS,
    SelectionSettings,
    SelectionState,
    list_selectors,
    select,
)

__all__ = [
    "SELECTORS",
    "HopscotchConfig",
    "SelectionSettings",
    "SelectionState",
    "export_plain",
    "fold_scales",
    "list_selectors",
    "run_hopscotch",
    "select",
]
