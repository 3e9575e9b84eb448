"""Training: shared step pieces, distributed helpers, checkpoints, and the recipes."""

from burnish.train.config import SFTConfig, load_config, parse_overrides
from burnish.train.sft import SFTResult, run_sft, sft

__all__ = ["SFTConfig", "SFTResult", "load_config", "parse_overrides", "run_sft", "sft"]
