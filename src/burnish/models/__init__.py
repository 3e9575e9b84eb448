"""Models: safe HF directory I/O, the character tokenizer, tiny configs of real architectures."""

from burnish.models.configs import ARCHITECTURES, tiny_config
from burnish.models.io import (
    check_model_dir,
    load_config,
    load_model,
    load_tokenizer,
    model_from_config,
    parse_dtype,
    save_model,
)
from burnish.models.tokenizer import build_char_tokenizer

__all__ = [
    "ARCHITECTURES",
    "build_char_tokenizer",
    "check_model_dir",
    "load_config",
    "load_model",
    "load_tokenizer",
    "model_from_config",
    "parse_dtype",
    "save_model",
    "tiny_config",
]
