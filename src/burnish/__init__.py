"""burnish: take a small causal LM through its whole customisation life.

The public API is imported lazily, so ``import burnish`` is cheap (no torch at import time)::

    import burnish
    burnish.list_tasks()
    result = burnish.sft(model="base", data="train.jsonl", lr=1e-3, max_steps=100)
    burnish.evaluate_model(result.final_model, ["addition"])
"""

from __future__ import annotations

from burnish.lazy import lazy_attributes

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "BurnishError": "burnish.errors",
    "get_task": "burnish.tasks",
    "list_tasks": "burnish.tasks",
    "load_model": "burnish.models",
    "save_model": "burnish.models",
    "build_char_tokenizer": "burnish.models",
    "prepare_dataset": "burnish.data",
    "tokenize_conversation": "burnish.data",
    "SFTConfig": "burnish.train.config",
    "run_sft": "burnish.train.sft",
    "sft": "burnish.train.sft",
    "evaluate": "burnish.eval",
    "evaluate_model": "burnish.eval",
    "run_quickstart": "burnish.quickstart",
    "OSFT": "burnish.train.osft",
    "OSFTConfig": "burnish.train.config",
    "run_continual": "burnish.train.continual",
    "run_merge": "burnish.merge",
    "load_merge_config": "burnish.merge",
    "apply_aim": "burnish.merge",
    "KIVICache": "burnish.kvcache",
    "SQuatCache": "burnish.kvcache",
    "run_search": "burnish.scaling",
    "load_prm": "burnish.scaling",
    "build_zoo": "burnish.zoo_build",
    "list_zoo": "burnish.models.zoo",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__ = lazy_attributes(__name__, _EXPORTS)
