"""Fine-tuning on generated examples: write them as chat JSONL, configure the SFT recipe.

One home for what the zoo builds, the quickstart and each continual-learning stage do:
``examples -> WORK/train.jsonl -> SFTConfig (data, output_dir WORK/run) -> run_sft``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from burnish.config import load_config
from burnish.io import write_jsonl
from burnish.tasks import Example
from burnish.train.config import SFTConfig

__all__ = ["examples_config"]

C = TypeVar("C", bound=SFTConfig)


def examples_config(
    examples: Iterable[Example | dict],
    work_dir: str | Path,
    config_cls: type[C] = SFTConfig,  # type: ignore[assignment]
    **options: Any,
) -> C:
    """Write ``examples`` (task examples, or chat rows as they are) to
    ``work_dir/train.jsonl`` and return the validated config that
    trains on them into ``work_dir/run``; ``options`` are the other config keys (``model``
    among them). Run it with :func:`burnish.train.sft.run_sft`."""
    work = Path(work_dir)
    data = write_jsonl(
        work / "train.jsonl", (e.to_messages() if isinstance(e, Example) else e for e in examples)
    )
    values = {"data": str(data), "output_dir": str(work / "run"), **options}
    return load_config(config_cls, None, values)
