"""Shared fixtures: the char tokenizer, tiny random models of real architectures, a saved model."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from burnish.models import build_char_tokenizer, model_from_config, save_model, tiny_config

# One thread: on this 2-core machine two threads often contend with other processes and
# make tiny-model steps ~10x slower (measured); one thread is never slower for these sizes.
torch.set_num_threads(int(os.environ.get("BURNISH_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def tok() -> PreTrainedTokenizerFast:
    """The character-level tokenizer (shared; tests must not mutate it)."""
    return build_char_tokenizer()


@pytest.fixture(scope="session")
def tiny_model() -> Callable[..., PreTrainedModel]:
    """Factory: ``tiny_model(arch, attn="sdpa", seed=0, **config_kwargs)`` -> fp32 eval model."""

    def make(
        arch: str = "llama", attn: str = "sdpa", seed: int = 0, **kwargs: object
    ) -> PreTrainedModel:
        kwargs.setdefault("hidden_size", 32)
        kwargs.setdefault("num_layers", 2)
        return model_from_config(tiny_config(arch, **kwargs), seed=seed, attn_implementation=attn)

    return make


@pytest.fixture
def model_dir(tmp_path: Path, tok: PreTrainedTokenizerFast, tiny_model) -> Path:
    """A tiny random Llama (hidden 64, 2 layers) saved with the char tokenizer."""
    return save_model(tiny_model("llama", hidden_size=64), tok, tmp_path / "model")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct from its GGUF (the `real` extra), imported into burnish's cache
    once (``$BURNISH_CACHE/gguf``, keyed by the file's SHA-256 and the converter version; tests
    must not write into it); skips, saying how to install it, where the packages are missing."""
    from burnish.errors import ModelLoadError
    from burnish.models.gguf import import_gguf

    try:
        return import_gguf("smollm2-135m-instruct")
    except ModelLoadError as e:
        pytest.skip(f"real model unavailable: {e}")
