"""Batched chat generation with any HF causal LM (left padding, stop at EOS)."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from burnish.models.io import chat_text
from burnish.seeding import seeded

__all__ = ["generate_chat"]


@torch.no_grad()
def generate_chat(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str] | list[list[dict[str, str]]],
    max_new_tokens: int,
    num_samples: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    **generate_kwargs: object,
) -> list[list[str]]:
    """Answer each prompt (a user message's text, or a message list the assistant answers
    next); returns ``num_samples`` completions per prompt.

    ``temperature == 0`` is greedy (then ``num_samples`` must be 1). Extra keyword arguments
    go to ``model.generate`` (e.g. ``cache`` for a custom KV cache).
    """
    if temperature == 0 and num_samples != 1:
        raise ValueError("greedy decoding gives one completion per prompt; set temperature > 0")
    texts = [
        chat_text(
            tokenizer,
            [{"role": "user", "content": p}] if isinstance(p, str) else list(p),
            add_generation_prompt=True,
        )
        for p in prompts
    ]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    enc = enc.to(model.device)
    sampling = temperature > 0
    # generate() samples from the global RNG: seed it inside a fork, so the caller's RNG
    # state is left as it was and the samples depend only on ``seed``.
    with seeded(seed, model.device):
        out = model.generate(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            max_new_tokens=max_new_tokens,
            do_sample=sampling,
            temperature=temperature if sampling else None,
            top_p=top_p if sampling else None,
            top_k=0 if sampling else None,
            num_return_sequences=num_samples,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **generate_kwargs,
        )  # [B * num_samples, prompt_len + new]
    new = out[:, enc["input_ids"].shape[1] :]
    decoded = tokenizer.batch_decode(new, skip_special_tokens=True)
    return [decoded[i * num_samples : (i + 1) * num_samples] for i in range(len(prompts))]
