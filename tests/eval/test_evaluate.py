"""Evaluation: per-task results, sampling metrics, generation arguments."""

from __future__ import annotations

import pytest

from burnish.eval import TaskResult, evaluate, format_table, generate_chat
from burnish.tasks import get_task


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model("llama")


def test_greedy_result_per_task(model, tok) -> None:
    results = evaluate(model, tok, ["counting", "comparison"], n_problems=6, batch_size=4)
    assert list(results) == ["counting", "comparison"]
    for name, r in results.items():
        assert isinstance(r, TaskResult) and r.task == name
        assert r.n_problems == 6 and r.samples_per_problem == 1
        assert (r.accuracy * 6).is_integer()  # k of the 6 problems right
        assert r.pass_at_n is None and r.majority_at_n is None
        assert len(r.examples) == 3
        gold = {p.prompt: p.final for p in get_task(name).generate(6, "test")}
        assert all(gold[e["prompt"]] == e["gold"] for e in r.examples)
        assert all(len(e["output"]) <= get_task(name).max_new_tokens for e in r.examples)
    again = evaluate(model, tok, ["counting"], n_problems=6, batch_size=6)["counting"]
    assert again.examples == results["counting"].examples  # greedy and batch-size independent
    rows = format_table(results)
    assert rows[0][:2] == ("counting", "6") and len(rows[0]) == 3


def test_sampling_metrics(model, tok) -> None:
    res = evaluate(model, tok, ["comparison"], n_problems=5, num_samples=4, temperature=1.0)
    r = res["comparison"]
    assert r.samples_per_problem == 4
    assert r.accuracy <= r.pass_at_n and r.majority_at_n <= r.pass_at_n
    assert (r.accuracy * 20).is_integer()  # k of the 5 x 4 samples right
    assert (r.pass_at_n * 5).is_integer() and (r.majority_at_n * 5).is_integer()
    assert len(format_table(res)[0]) == 5


def test_accuracy_counts_correct_answers(tok, tiny_model) -> None:
    """A model whose output is forced to the gold answer scores 1.0 (scoring is wired right)."""
    task = get_task("counting")
    problem = task.generate(1, "test")[0]
    answer_ids = [*tok.encode(problem.answer, add_special_tokens=False), tok.eos_token_id]
    model = tiny_model("llama")
    calls = []

    def forced(input_ids, scores):  # logits processor: the next gold token wins
        calls.append(1)
        n = len(calls) - 1
        scores[:] = -1e9
        scores[:, answer_ids[min(n, len(answer_ids) - 1)]] = 0
        return scores

    outs = generate_chat(model, tok, [problem.prompt], 20, logits_processor=[forced])
    assert outs == [[problem.answer]]
    assert task.score(problem.prompt, outs[0][0])


def test_generate_chat_shapes_and_errors(model, tok) -> None:
    prompts = ["count a in ab", "max 1 22 3"]
    outs = generate_chat(model, tok, prompts, 6, num_samples=3, temperature=1.0, seed=1)
    assert len(outs) == 2 and all(len(o) == 3 for o in outs)
    assert all(isinstance(s, str) and len(s) <= 6 for o in outs for s in o)
    assert generate_chat(model, tok, prompts, 6, num_samples=3, temperature=1.0, seed=1) == outs
    assert tok.padding_side == "left"
    with pytest.raises(ValueError, match="greedy decoding gives one completion"):
        generate_chat(model, tok, prompts, 6, num_samples=2)
