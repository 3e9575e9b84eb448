"""The PRM build: contrastive data labelled by the checker, a grown trunk, both fits."""

from __future__ import annotations

import random

from burnish.tasks import get_task
from burnish.tasks.arith_chain import corrupt_solution


def test_corrupted_solutions_are_wrong_from_the_corruption_on() -> None:
    task = get_task("arith_chain")
    rng = random.Random(0)
    for example in task.generate(50, "train", seed=3):
        gold = task.solve(example.prompt).answer
        for _ in range(4):
            bad = corrupt_solution(gold, rng)
            steps, labels = task.step_labels(example.prompt, bad)
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


def test_grown_model_starts_as_the_policy(tiny_model) -> None:
    """Extra layers start as the identity and an untied head as a copy: same logits."""
    import torch

    tiny_llama = tiny_model("llama", hidden_size=32, num_layers=2)
    from burnish.zoo_build.prm_fit import grow_model

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
    from burnish.zoo_build import PRM_FITS, PRMSpec
    from burnish.zoo_build.prm_data import contrastive_rows

    task = get_task("arith_chain")
    prompts = [e.prompt for e in task.generate(6, "train", seed=0)]
    rows = contrastive_rows(task, prompts, 2, seed=0)
    spec = replace(PRMSpec(), trunk_steps=0, steps=3, batch=4, warmup=1)
    _, tok = load_model(resolve_model(spec.parent))
    logs: list[str] = []
    prm, loss = PRM_FITS["likelihood"](spec, rows, tok, task, log=logs.append)
    card = prm.card_options()
    assert card["kind"] == "likelihood" and card["separator"] == "\n"
    assert math.isfinite(loss) and card["beta"] > 0 and math.isfinite(card["bias"])
    assert not prm.model.training
    assert any("good" in m and "bad" in m for m in logs)


def test_two_class_prm_fit_runs_on_the_zoo_policy() -> None:
    """A few steps of the two-class fit on a grown, untied, frozen-trunk copy: only the new
    layers, the final norm and the head move."""
    import math
    from dataclasses import replace

    import torch

    from burnish.models.io import load_model
    from burnish.models.zoo import resolve_model
    from burnish.zoo_build import PRM_FITS, PRMSpec
    from burnish.zoo_build.prm_data import contrastive_rows

    task = get_task("arith_chain")
    prompts = [e.prompt for e in task.generate(6, "train", seed=0)]
    rows = contrastive_rows(task, prompts, 2, seed=0)
    spec = replace(
        PRMSpec(), kind="two_class", extra_layers=1, untie=True, freeze_policy=True, steps=2
    )
    spec = replace(spec, trunk_steps=0)
    spec = replace(spec, batch=4, warmup=1, lr=1e-2)
    parent, tok = load_model(resolve_model(spec.parent))
    prm, loss = PRM_FITS["two_class"](spec, rows, tok, task, log=lambda message: None)
    model = prm.model
    assert prm.card_options() == {"kind": "two_class", "separator": "\n", "good": "+", "bad": "-"}
    assert math.isfinite(loss) and model.config.num_hidden_layers == 5
    before = dict(parent.named_parameters())
    for name, param in model.named_parameters():
        moved = name not in before or not torch.equal(param, before[name])
        trainable = name.startswith(("lm_head", "model.norm", "model.layers.4."))
        assert moved == trainable or (trainable and name not in before), name
