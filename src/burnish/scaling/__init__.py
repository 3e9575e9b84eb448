"""Inference-time scaling: engines, reward models, search algorithms and runs.

Heavy modules (torch, transformers) are imported on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ALGORITHMS",
    "Engine",
    "EngineError",
    "HFEngine",
    "HFProcessRewardModel",
    "LikelihoodProcessRewardModel",
    "LogProbReward",
    "OpenAIEngine",
    "OutcomeRewardModel",
    "Particle",
    "Problem",
    "SearchOptions",
    "SearchResult",
    "SeparatorRewardModel",
    "StepConfig",
    "Usage",
    "aggregate",
    "effective_sample_size",
    "get_algorithm",
    "load_prm",
    "multinomial_resample",
    "resampling_probs",
    "run_search",
    "search_problems",
    "systematic_resample",
]

_HOMES = {
    "ALGORITHMS": "algorithms",
    "get_algorithm": "algorithms",
    "SearchOptions": "algorithms",
    "SearchResult": "algorithms",
    "Engine": "engine",
    "EngineError": "engine",
    "StepConfig": "engine",
    "HFEngine": "hf_engine",
    "OpenAIEngine": "openai_engine",
    "HFProcessRewardModel": "reward",
    "LikelihoodProcessRewardModel": "reward",
    "SeparatorRewardModel": "reward",
    "LogProbReward": "reward",
    "OutcomeRewardModel": "reward",
    "aggregate": "reward",
    "load_prm": "reward",
    "Particle": "particles",
    "Problem": "particles",
    "Usage": "particles",
    "effective_sample_size": "maths",
    "multinomial_resample": "maths",
    "resampling_probs": "maths",
    "systematic_resample": "maths",
    "run_search": "run",
    "search_problems": "run",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"burnish.scaling.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'burnish.scaling' has no attribute {name!r}")
