"""The PRM build's contrastive data: minimally corrupted gold solutions, labelled by the checker."""

from __future__ import annotations

import random

from burnish.scaling.build_prm import corrupt_solution, label_solutions
from burnish.tasks import get_task


def test_corrupted_solutions_are_wrong_from_the_corruption_on() -> None:
    task = get_task("arith_chain")
    rng = random.Random(0)
    for example in task.generate(50, "train", seed=3):
        gold = task.solve(example.prompt).answer
        for _ in range(4):
            bad = corrupt_solution(gold, rng)
            steps, labels = label_solutions(task.name, example.prompt, bad)
            assert len(steps) == len(gold.splitlines())
            assert bad != gold
            assert not labels[-1]  # the final answer is wrong ...
            first_bad = labels.index(False)
            assert all(labels[:first_bad]) and not any(labels[first_bad:])  # ... from there on
            gold_lines = gold.splitlines()
            assert steps[:first_bad] == gold_lines[:first_bad]
            # the chain stays consistent: the answer restates the last step's result
            if len(steps) > 1 and first_bad < len(steps) - 1:
                assert steps[-1].split(": ")[1] == steps[-2].split("=")[1]


def test_grown_model_starts_as_the_policy(tiny_llama) -> None:
    """Extra layers start as the identity and an untied head as a copy: same logits."""
    import torch

    from burnish.scaling.build_prm import grow_model

    grown = grow_model(tiny_llama, 2, untie=True)
    assert grown.config.num_hidden_layers == tiny_llama.config.num_hidden_layers + 2
    assert grown.lm_head.weight.data_ptr() != grown.model.embed_tokens.weight.data_ptr()
    ids = torch.randint(3, tiny_llama.config.vocab_size, (2, 11))
    with torch.no_grad():
        torch.testing.assert_close(grown(ids).logits, tiny_llama(ids).logits)


def test_likelihood_prm_fit_runs_on_the_zoo_policy() -> None:
    """A few steps of the likelihood fit: finite loss, positive beta, labels are used."""
    import math
    from dataclasses import replace

    from burnish.models.io import load_model
    from burnish.models.zoo import resolve_model
    from burnish.scaling.build_prm import PRMSpec, _contrastive, train_likelihood_prm

    task = get_task("arith_chain")
    prompts = [e.prompt for e in task.generate(6, "train", seed=0)]
    rows = _contrastive(task, prompts, 2, seed=0)
    spec = replace(PRMSpec(), trunk_steps=0, steps=3, batch=4, warmup=1)
    _, tok = load_model(resolve_model(spec.parent))
    logs: list[str] = []
    model, beta, bias, loss = train_likelihood_prm(spec, rows, tok, log=logs.append)
    assert math.isfinite(loss) and beta > 0 and math.isfinite(bias)
    assert not model.training
    assert any("good" in m and "bad" in m for m in logs)


def test_two_class_prm_fit_runs_on_the_zoo_policy() -> None:
    """A few steps of the two-class fit on a grown, untied, frozen-trunk copy: only the new
    layers, the final norm and the head move."""
    import math
    from dataclasses import replace

    import torch

    from burnish.models.io import load_model
    from burnish.models.zoo import resolve_model
    from burnish.scaling.build_prm import PRMSpec, _contrastive, train_prm

    task = get_task("arith_chain")
    rows = _contrastive(task, [e.prompt for e in task.generate(6, "train", seed=0)], 2, seed=0)
    spec = replace(
        PRMSpec(), kind="two_class", extra_layers=1, untie=True, freeze_policy=True, steps=2
    )
    spec = replace(spec, trunk_steps=0)
    spec = replace(spec, batch=4, warmup=1, lr=1e-2)
    parent, tok = load_model(resolve_model(spec.parent))
    model, loss = train_prm(spec, rows, tok, task, log=lambda message: None)
    assert math.isfinite(loss) and model.config.num_hidden_layers == 5
    before = dict(parent.named_parameters())
    for name, param in model.named_parameters():
        moved = name not in before or not torch.equal(param, before[name])
        trainable = name.startswith(("lm_head", "model.norm", "model.layers.4."))
        assert moved == trainable or (trainable and name not in before), name
