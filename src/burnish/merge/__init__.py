"""Model merging: streaming task-vector merges and activation-informed merging (AIM).

>>> from burnish.merge import load_merge_config, run_merge
>>> run_merge(load_merge_config("examples/merge-ties.yaml"), "runs/merged")  # doctest: +SKIP

Every method is one keyword entry of :data:`MERGE_METHODS` (``burnish.merge.ties`` ...)
over the pure tensor functions of :mod:`burnish.merge.task_vectors`; :func:`run_merge`
streams one tensor at a time from (sharded) safetensors inputs to sharded safetensors output;
:func:`apply_aim` and the ``aim:`` config section apply AIM (aim.md) with statistics from
:func:`compute_or_load_stats`.
"""

from __future__ import annotations

from burnish.lazy import lazy_attributes
from burnish.merge.registry import (
    MERGE_METHODS,
    MergeMethod,
    breadcrumbs,
    breadcrumbs_ties,
    dare_linear,
    dare_ties,
    get_method,
    list_methods,
    task_arithmetic,
    ties,
)

__all__ = [
    "MERGE_METHODS",
    "AIMConfig",
    "LazyCheckpoint",
    "MergeConfig",
    "MergeMethod",
    "MergeResult",
    "aim_relax",
    "apply_aim",
    "breadcrumbs",
    "breadcrumbs_ties",
    "calibration_blocks",
    "channel_importance",
    "collect_activation_stats",
    "compute_or_load_stats",
    "dare_linear",
    "dare_ties",
    "get_method",
    "linear",
    "list_methods",
    "load_merge_config",
    "load_stats",
    "module_omega",
    "run_merge",
    "save_stats",
    "task_arithmetic",
    "ties",
]

# The rest loads on first use (torch): the registry above is cheap, for help texts.
_HOMES = {
    "aim_relax": "burnish.merge.aim",
    "channel_importance": "burnish.merge.aim",
    "module_omega": "burnish.merge.aim",
    "calibration_blocks": "burnish.merge.aim_stats",
    "collect_activation_stats": "burnish.merge.aim_stats",
    "compute_or_load_stats": "burnish.merge.aim_stats",
    "load_stats": "burnish.merge.aim_stats",
    "save_stats": "burnish.merge.aim_stats",
    "AIMConfig": "burnish.merge.config",
    "MergeConfig": "burnish.merge.config",
    "load_merge_config": "burnish.merge.config",
    "LazyCheckpoint": "burnish.merge.lazy",
    "linear": "burnish.merge.linear",
    "MergeResult": "burnish.merge.run",
    "apply_aim": "burnish.merge.run",
    "run_merge": "burnish.merge.run",
}


__getattr__ = lazy_attributes(__name__, _HOMES)
