"""A character-level Hugging Face fast tokenizer for the zoo.

One token per character of printable ASCII plus newline, a handful of special tokens, and a
chat template, built as a real :class:`~transformers.PreTrainedTokenizerFast` so that
``apply_chat_template``, ``generate``, ``save_pretrained`` and every other HF convention work.
Tokenization is exact: ``decode(encode(text)) == text`` for every text over the alphabet.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

__all__ = [
    "ALPHABET",
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "build_char_tokenizer",
]

# Specials first so their ids are stable and small: pad=0, bos=1, eos=2.
SPECIAL_TOKENS: dict[str, str] = {
    "pad_token": "<|pad|>",
    "bos_token": "<|bos|>",
    "eos_token": "<|end|>",
    "unk_token": "<|unk|>",
}
ROLE_TOKENS: tuple[str, ...] = ("<|system|>", "<|user|>", "<|assistant|>")
ALPHABET: str = "\n" + "".join(chr(c) for c in range(32, 127))

# Each turn is <|role|>content<|end|>. The eos token closes every turn, so a model learns to
# stop after its answer and `generate` stops there. Only the assistant's content and its
# closing <|end|> are trained by default (see burnish.data.tokenize).
CHAT_TEMPLATE: str = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + eos_token }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def _byte_level(ch: str) -> str:
    """The byte-level alphabet's symbol for an ASCII character (' ' -> 'Ġ', newline -> 'Ċ')."""
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str(ch)[
        0
    ][0]


def build_char_tokenizer(model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """Build the character-level tokenizer (vocabulary: specials, roles, then ALPHABET).

    A byte-level BPE with no merges over single ASCII characters is exactly a character
    tokenizer. Byte-level (rather than raw characters) is what the BPE tokenizers of Llama-3,
    Qwen2 and GPT-2 use, so transformers' own tokenizer classes, which rebuild the pre-tokenizer
    for some model types (Qwen2Tokenizer), load these files and give the same ids.
    """
    specials = [*SPECIAL_TOKENS.values(), *ROLE_TOKENS]
    vocab = {tok: i for i, tok in enumerate([*specials, *(_byte_level(c) for c in ALPHABET)])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        model_max_length=model_max_length,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        **SPECIAL_TOKENS,
        additional_special_tokens=list(ROLE_TOKENS),
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok
