"""Tiny configurations of real architectures (Llama, Qwen2, Mistral) for tests and the zoo."""

from __future__ import annotations

from transformers import LlamaConfig, MistralConfig, PretrainedConfig, Qwen2Config

from burnish.errors import ConfigError

__all__ = ["ARCHITECTURES", "tiny_config"]

ARCHITECTURES = ("llama", "qwen2", "mistral")


def tiny_config(
    arch: str = "llama",
    vocab_size: int = 103,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 512,
    tie_word_embeddings: bool = True,
    pad_token_id: int = 0,
    bos_token_id: int = 1,
    eos_token_id: int = 2,
) -> PretrainedConfig:
    """A small config of a real HF architecture (GQA when ``num_kv_heads < num_heads``)."""
    classes = {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig}
    if arch not in classes:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of {', '.join(classes)}")
    if hidden_size % num_heads or num_heads % num_kv_heads:
        raise ConfigError(
            f"hidden_size ({hidden_size}) must divide by num_heads ({num_heads}) and num_heads "
            f"by num_kv_heads ({num_kv_heads})"
        )
    cfg = classes[arch](
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
    )
    if arch == "mistral":
        cfg.sliding_window = None
    return cfg
