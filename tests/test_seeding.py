"""Library calls that draw randomness leave the caller's global RNG as it was."""

from __future__ import annotations

import torch

from burnish.eval.generate import generate_chat
from burnish.models import load_model, model_from_config, tiny_config
from burnish.models.zoo import resolve_model
from burnish.seeding import seeded


def _untouched(fn) -> bool:
    torch.manual_seed(123)
    fn()
    after = torch.rand(3)
    torch.manual_seed(123)
    return torch.equal(after, torch.rand(3))


def test_seeded_restores_and_repeats() -> None:
    with seeded(5):
        a = torch.rand(4)
    with seeded(5):
        b = torch.rand(4)
    assert torch.equal(a, b)

    def draw_inside() -> None:
        with seeded(7):
            torch.rand(10)

    assert _untouched(draw_inside)
    assert not _untouched(lambda: torch.rand(10))  # a draw outside does move it


def test_model_init_and_sampling_leave_the_global_rng_alone() -> None:
    assert _untouched(lambda: model_from_config(tiny_config("llama"), seed=3))
    first = model_from_config(tiny_config("llama"), seed=3)
    again = model_from_config(tiny_config("llama"), seed=3)
    assert all(
        torch.equal(p, q) for p, q in zip(first.parameters(), again.parameters(), strict=True)
    )
    model, tok = load_model(resolve_model("base"))

    def sample() -> list[list[str]]:
        return generate_chat(model, tok, ["add 12+34"], 8, num_samples=4, temperature=1.0, seed=9)

    assert _untouched(sample)
    assert sample() == sample()  # the samples depend on the seed argument only
