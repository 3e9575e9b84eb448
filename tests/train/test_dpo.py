"""The preference-tuning recipe: pairs packed whole, margins grow on the training pairs,
exact resume, the cached reference, SimPO without a reference."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from burnish.config import load_config
from burnish.data.preference import load_pairs, tokenize_pairs
from burnish.io import read_jsonl, write_jsonl
from burnish.train.config import DPOConfig
from burnish.train.dpo import REFERENCE_FILE, pair_minibatches, run_dpo

ROWS = [
    {"prompt": f"add {a}+{b}", "chosen": f"Answer: {a + b}", "rejected": f"Answer: {a + b + 3}"}
    for a, b in [(2, 3), (11, 4), (7, 8), (20, 5), (6, 6), (9, 1)]
]


@pytest.fixture
def pairs_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, ROWS)
    return path


def config(pairs_file, out, **kw) -> DPOConfig:
    opts = {
        "model": "base",
        "data": str(pairs_file),
        "output_dir": str(out),
        "device": "cpu",
        "effective_batch_size": 6,
        "lr": 3e-4,
        "max_steps": 6,
        "epochs": 10,
        "max_tokens_per_step": 128,
        "save_state_every_steps": 1,
        **kw,
    }
    return load_config(DPOConfig, None, opts)


def test_pairs_are_packed_whole_within_the_token_bound(tok, pairs_file) -> None:
    data = tokenize_pairs(load_pairs(pairs_file), tok, 128)
    mbs = pair_minibatches(data, list(range(len(data))), 70, 140, 0, torch.float32)
    assert sorted(i for pb in mbs for i in pb.pairs) == list(range(len(data)))
    assert any(len(pb.rows) > 1 for pb in mbs)
    for pb in mbs:
        rows, length = pb.batch.input_ids.shape
        assert length <= 70 and rows * length <= 140 and len(pb.lengths) == 2 * len(pb.pairs)
        # each row holds whole pairs: a chosen and its rejected side by side
        assert all(r[0] % 2 == 0 and len(r) % 2 == 0 for r in pb.rows)


@pytest.mark.parametrize("loss", ["sigmoid", "ipo", "simpo"])
def test_margins_grow_on_the_training_pairs(pairs_file, tmp_path, loss: str) -> None:
    beta = 2.0 if loss == "simpo" else 0.1
    result = run_dpo(config(pairs_file, tmp_path / loss, loss=loss, beta=beta), progress=False)
    rows = read_jsonl(tmp_path / loss / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert rows[-1]["rewards/margins"] > rows[0]["rewards/margins"]
    assert rows[-1]["rewards/accuracies"] == 1.0
    assert set(rows[0]) >= {
        "rewards/chosen",
        "rewards/rejected",
        "rewards/margins",
        "rewards/accuracies",
    }
    if loss == "sigmoid":
        assert rows[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy = reference at first
    assert (tmp_path / loss / REFERENCE_FILE).is_file() == (loss != "simpo")
    assert (result.final_model / "model.safetensors").is_file()
    assert (tmp_path / loss / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_is_exact_and_reuses_the_reference(pairs_file, tmp_path) -> None:
    whole = tmp_path / "whole"
    run_dpo(config(pairs_file, whole, max_steps=4), progress=False)
    part = tmp_path / "part"
    run_dpo(config(pairs_file, part, max_steps=2), progress=False)
    ref = (part / REFERENCE_FILE).stat().st_mtime_ns
    run_dpo(config(pairs_file, part, max_steps=4), resume=True, progress=False)
    assert (part / REFERENCE_FILE).stat().st_mtime_ns == ref  # not recomputed
    a = load_file(str(whole / "final" / "model.safetensors"))
    b = load_file(str(part / "final" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows]  # noqa: E731
    assert strip(read_jsonl(part / "metrics.jsonl")) == strip(read_jsonl(whole / "metrics.jsonl"))


def test_sft_weight_adds_the_chosen_per_token_nll(pairs_file, tmp_path) -> None:
    from burnish.models import load_model
    from burnish.models.zoo import resolve_model
    from burnish.reward import LocalLogProbs

    cfg = config(pairs_file, tmp_path / "rpo", max_steps=1, sft_weight=0.5)
    run_dpo(cfg, progress=False)
    model, tok = load_model(resolve_model("base"))
    logps = LocalLogProbs(model, tok)([c for c, _, _ in load_pairs(pairs_file)])
    nll = -sum(s for s, _ in logps) / sum(n for _, n in logps)
    first = read_jsonl(tmp_path / "rpo" / "metrics.jsonl")[0]
    assert first["loss"] == pytest.approx(0.693147 + 0.5 * nll, rel=1e-5)
