"""Model merging: streaming task-vector merges and activation-informed merging (AIM).

>>> from burnish.merge import load_merge_config, run_merge
>>> run_merge(load_merge_config("examples/merge-ties.yaml"), "runs/merged")  # doctest: +SKIP

Every method is a pure tensor function (``burnish.merge.ties.ties`` ...) registered in
:data:`MERGE_METHODS`; :func:`run_merge` streams one tensor at a time from (sharded)
safetensors inputs to sharded safetensors output; :func:`apply_aim` and the ``aim:`` config
section apply AIM (aim.md) with statistics from :func:`compute_or_load_stats`.
"""

from burnish.merge.aim import aim_relax, channel_importance, module_omega
from burnish.merge.aim_stats import (
    calibration_blocks,
    collect_activation_stats,
    compute_or_load_stats,
    load_stats,
    save_stats,
)
from burnish.merge.breadcrumbs import breadcrumbs
from burnish.merge.breadcrumbs_ties import breadcrumbs_ties
from burnish.merge.config import AIMConfig, MergeConfig, load_merge_config
from burnish.merge.dare_linear import dare_linear
from burnish.merge.dare_ties import dare_ties
from burnish.merge.lazy import LazyCheckpoint
from burnish.merge.linear import linear
from burnish.merge.registry import MERGE_METHODS, MergeMethod, get_method, list_methods
from burnish.merge.run import MergeResult, apply_aim, run_merge
from burnish.merge.task_arithmetic import task_arithmetic
from burnish.merge.ties import ties

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
