"""Fixtures for the scaling tests: a tiny random Llama with the char tokenizer."""

from __future__ import annotations

import pytest

from burnish.models.configs import tiny_config
from burnish.models.io import load_model, model_from_config
from burnish.models.tokenizer import build_char_tokenizer
from burnish.models.zoo import resolve_model


@pytest.fixture(scope="session")
def char_tok():
    return build_char_tokenizer()


@pytest.fixture(scope="session")
def tiny_llama(char_tok):
    cfg = tiny_config("llama", len(char_tok), hidden_size=32, num_layers=2, num_heads=4)
    return model_from_config(cfg, seed=0)


@pytest.fixture(scope="session")
def policy():
    """The zoo's arith-policy (model, tokenizer): writes real steps ending in newlines."""
    return load_model(resolve_model("arith-policy"))
