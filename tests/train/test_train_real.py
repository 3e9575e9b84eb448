"""SFT and OSFT on the real SmolLM2-135M-Instruct (BPE, GQA, tied embeddings, ChatML)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from burnish.config import load_config
from burnish.io import write_jsonl
from burnish.models import load_model
from burnish.tasks import mixture
from burnish.train.config import OSFTConfig, SFTConfig
from burnish.train.osft import OSFT
from burnish.train.sft import run_sft

pytestmark = pytest.mark.real


def _cfg(cls, model: Path, tmp_path: Path, name: str, **kw):
    data = write_jsonl(
        tmp_path / "train.jsonl", [e.to_messages() for e in mixture(["addition"], 16, "train", 0)]
    )
    values = {
        "model": str(model),
        "data": str(data),
        "output_dir": str(tmp_path / name),
        "max_steps": 2,
        "effective_batch_size": 8,
        "max_seq_len": 128,
        "lr": 1e-5,
        "save_state": False,
        "save_epoch_end": False,
        "device": "cpu",
        "cache_dir": str(tmp_path / "cache"),
        **kw,
    }
    return load_config(cls, None, values)


def test_sft_steps_and_saves_a_loadable_model(smollm2: Path, tmp_path: Path) -> None:
    """Chat-template masks on ChatML (with its default system prompt) train only answers."""
    result = run_sft(_cfg(SFTConfig, smollm2, tmp_path, "sft"), progress=False)
    assert result.steps == 2 and torch.isfinite(torch.tensor(result.final_loss))
    report = result.data_report
    assert report.samples_kept == 16 and 0 < report.loss_tokens < report.tokens / 2
    model, _ = load_model(result.final_model)
    assert model.config.tie_word_embeddings and model.config.num_key_value_heads == 3


def test_osft_keeps_the_frozen_subspace_on_a_real_model(smollm2: Path, tmp_path: Path) -> None:
    """On real weights (|W| up to ~10), U_h^T dW V_h stays below 1e-4 after AdamW steps."""
    model, tok = load_model(smollm2)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = _cfg(OSFTConfig, smollm2, tmp_path, "osft", lr=1e-4, target_patterns=["*.layers.0.*"])
    method = OSFT(cfg)
    run_sft(cfg, progress=False, model=model, tokenizer=tok, method=method)
    assert method.targets and 0 < method.frozen_share() < 1
    for t in method.targets:
        dW = t.param.detach() - start[f"{t.name}.weight"]
        assert dW.abs().max() > 0, t.name
        assert (t.U_h.T @ dW @ t.V_h).abs().max() < 1e-4, t.name
