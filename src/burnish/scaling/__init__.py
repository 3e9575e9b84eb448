"""Inference-time scaling: engines, reward models, search algorithms and runs.

Heavy modules (torch, transformers) are imported on first use of their names.
"""

from __future__ import annotations

from burnish.lazy import lazy_attributes

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
    "ALGORITHMS": "burnish.scaling.algorithms",
    "get_algorithm": "burnish.scaling.algorithms",
    "SearchOptions": "burnish.scaling.algorithms",
    "SearchResult": "burnish.scaling.algorithms",
    "Engine": "burnish.scaling.engine",
    "EngineError": "burnish.scaling.engine",
    "StepConfig": "burnish.scaling.engine",
    "HFEngine": "burnish.scaling.hf_engine",
    "OpenAIEngine": "burnish.scaling.openai_engine",
    "HFProcessRewardModel": "burnish.scaling.reward",
    "LikelihoodProcessRewardModel": "burnish.scaling.reward",
    "SeparatorRewardModel": "burnish.scaling.reward",
    "LogProbReward": "burnish.scaling.reward",
    "OutcomeRewardModel": "burnish.scaling.reward",
    "aggregate": "burnish.scaling.reward",
    "load_prm": "burnish.scaling.reward",
    "Particle": "burnish.scaling.particles",
    "Problem": "burnish.scaling.particles",
    "Usage": "burnish.scaling.particles",
    "effective_sample_size": "burnish.scaling.maths",
    "multinomial_resample": "burnish.scaling.maths",
    "resampling_probs": "burnish.scaling.maths",
    "systematic_resample": "burnish.scaling.maths",
    "run_search": "burnish.scaling.run",
    "search_problems": "burnish.scaling.run",
}


__getattr__ = lazy_attributes(__name__, _HOMES)
