"""The shipped zoo: present, small, loadable with or without burnish, and its cards are true."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from burnish.errors import ConfigError, ModelLoadError
from burnish.eval import evaluate
from burnish.models import load_model
from burnish.models.tokenizer import build_char_tokenizer
from burnish.models.zoo import ZOO_DIR, list_zoo, resolve_model, zoo_card
from burnish.zoo_build import build_zoo

EXPECTED = ("base", "ft-addition", "ft-sorting", "ft-reversal", "arith-policy", "qwen2-mix")
ZOO = list_zoo()
FINE_TUNES = {"ft-addition": "addition", "ft-sorting": "sorting", "ft-reversal": "reversal"}
MB = 1024 * 1024


@cache
def _load(name: str):
    """(model, tokenizer) of a zoo model, loaded once per test session."""
    return load_model(resolve_model(name))


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_zoo_lists_expected_models() -> None:
    assert set(EXPECTED) <= set(ZOO), ZOO


def test_zoo_is_small() -> None:
    sizes = {name: _dir_bytes(ZOO_DIR / name) for name in ZOO}
    for name, size in sizes.items():
        assert size < 5 * MB, (name, size)
    assert _dir_bytes(ZOO_DIR) < 30 * MB, sizes


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_loads_with_card(name: str) -> None:
    path = resolve_model(name)
    assert path == ZOO_DIR / name
    assert (path / "README.md").read_text().startswith(f"# {name}\n")
    card = zoo_card(name)
    assert card["name"] == name
    model, tok = _load(name)
    assert type(model).__name__ == card["architecture"]
    assert sum(p.numel() for p in model.parameters()) == card["parameters"]
    assert next(model.parameters()).dtype == torch.float32
    assert len(tok) == model.config.vocab_size


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_loads_with_plain_transformers(name: str) -> None:
    """A zoo directory is a plain HF directory: AutoModel/AutoTokenizer load it, same weights."""
    path = resolve_model(name)
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.eos_token == "<|end|>"
    ours, _ = _load(name)
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ours(ids).logits)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_plain_tokenizer_matches_burnish(name: str) -> None:
    """Plain AutoTokenizer (whatever class it picks for the model type, e.g. Qwen2Tokenizer)
    gives exactly the ids of burnish's char tokenizer, spaces and newlines included."""
    msgs = [
        {"role": "user", "content": "sort 3 1 2"},
        {"role": "assistant", "content": "1+2=3\n3*4=12\nAnswer: 1 2 3"},
    ]
    plain = AutoTokenizer.from_pretrained(resolve_model(name))
    ours = build_char_tokenizer()
    got = plain.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]
    want = ours.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]
    assert got == want


def test_qwen2_mix_is_qwen2() -> None:
    cfg = json.loads((resolve_model("qwen2-mix") / "config.json").read_text())
    assert cfg["model_type"] == "qwen2"
    assert zoo_card("qwen2-mix")["architecture"] == "Qwen2ForCausalLM"


@pytest.mark.parametrize("name", ZOO)
def test_zoo_card_accuracy_rescores(name: str) -> None:
    """Re-score the card's greedy accuracy on its check sample, for every task on the card.

    Same problems (test split, seed 0, first n), greedy decoding and fp32 weights as the
    build, so the numbers should agree exactly (they did when written: all 36 matched). The
    0.05 tolerance (3 of 64 problems) leaves room for float differences from batch
    composition or thread count (the zoo was built with 2 threads, the tests use 1) flipping
    a near-tied argmax. All 6 models x 6 tasks take ~3 s on 2 cores, so no slow marker.
    """
    card = zoo_card(name)
    check = card["check_sample"]
    assert check == {"n": 64, "split": "test", "seed": 0, "decoding": "greedy"}
    model, tok = _load(name)
    tasks = list(card["accuracy"])
    assert set(card["spec"]["tasks"]) <= set(tasks)
    results = evaluate(model, tok, tasks, n_problems=check["n"], batch_size=64, seed=0)
    for task in tasks:
        got = results[task].accuracy
        assert got == pytest.approx(card["accuracy"][task], abs=0.05), (task, got)


@pytest.mark.parametrize(("name", "task"), FINE_TUNES.items())
def test_fine_tune_beats_base_on_its_task(name: str, task: str) -> None:
    card = zoo_card(name)
    assert card["spec"]["parent"] == "base"
    assert card["spec"]["tasks"] == [task]
    base = zoo_card("base")["accuracy"][task]
    assert card["accuracy"][task] >= base + 0.2, (card["accuracy"][task], base)


def test_arith_policy_best_of_beats_greedy() -> None:
    best = zoo_card("arith-policy")["best_of"]["arith_chain"]
    assert best["samples"] == 16
    assert best["pass_at_n"] > best["greedy"] + 0.1, best
    assert best["mean_sample"] <= best["pass_at_n"]


def test_resolve_model_path_wins_and_errors_list_zoo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base").mkdir()
    assert resolve_model("base") == Path("base")  # a path always wins over a zoo name
    with pytest.raises(ModelLoadError, match="not a zoo model") as info:
        resolve_model("no-such-model")
    for name in ZOO:
        assert name in str(info.value)
    with pytest.raises(ModelLoadError, match=r"no card\.json"):
        zoo_card("base")  # the local ./base directory has no card


def test_zoo_build_names_and_order_errors(tmp_path) -> None:
    """Unknown names list every buildable model (arith-prm included); arith-prm needs its
    policy, in the output folder or the shipped zoo."""
    from burnish.zoo_build import PRMSpec

    with pytest.raises(ConfigError, match="arith-prm"):
        build_zoo(["no-such-model"], tmp_path, progress=False)
    with pytest.raises(ConfigError, match="needs 'no-such-policy' built first"):
        build_zoo(["arith-prm"], tmp_path, progress=False, prm=PRMSpec(parent="no-such-policy"))
