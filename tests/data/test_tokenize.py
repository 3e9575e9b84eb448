"""Chat tokenization: exactly the assistant turns (and their closing <|end|>) carry labels."""

from __future__ import annotations

import pytest

from burnish.data import IGNORE_INDEX, tokenize_conversation, validate_messages
from burnish.errors import DataError

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "count a in abca"},
    {"role": "assistant", "content": "Answer: 2"},
    {"role": "user", "content": "user b?"},
    {"role": "assistant", "content": "Answer: 1\nok"},
]


def _expected(tok, messages, unmask: bool) -> tuple[list[int], list[int]]:
    """Build the token stream by hand: <|bos|> then <|role|> content <|end|> per turn."""
    ids = [tok.bos_token_id]
    labels = [IGNORE_INDEX]
    for m in messages:
        role_id = tok.convert_tokens_to_ids(f"<|{m['role']}|>")
        content = tok(m["content"], add_special_tokens=False)["input_ids"]
        assert len(content) == len(m["content"])  # one token per character
        trained = m["role"] == "assistant" or (unmask and m["role"] == "user")
        ids += [role_id, *content, tok.eos_token_id]
        labels += [IGNORE_INDEX] + (
            [*content, tok.eos_token_id] if trained else [IGNORE_INDEX] * (len(content) + 1)
        )
    return ids, labels


@pytest.mark.parametrize("unmask", [False, True])
def test_labels_token_by_token(tok, unmask: bool) -> None:
    ids, labels = tokenize_conversation(CONVERSATION, tok, unmask=unmask)
    exp_ids, exp_labels = _expected(tok, CONVERSATION, unmask)
    assert ids == exp_ids
    assert labels == exp_labels
    # Restated as properties: labeled positions copy the input; role tokens, bos and the
    # system turn never carry a label; each labeled turn ends with a labeled <|end|>.
    special = {
        tok.bos_token_id,
        *tok.convert_tokens_to_ids(["<|system|>", "<|user|>", "<|assistant|>"]),
    }
    for t, (x, y) in enumerate(zip(ids, labels, strict=True)):
        assert y in (IGNORE_INDEX, x)
        if x in special:
            assert y == IGNORE_INDEX, t
    text = tok.decode([x for x, y in zip(ids, labels, strict=True) if y != IGNORE_INDEX])
    if unmask:
        assert text == "count a in abca<|end|>Answer: 2<|end|>user b?<|end|>Answer: 1\nok<|end|>"
    else:
        assert text == "Answer: 2<|end|>Answer: 1\nok<|end|>"
    assert "Be brief." not in text
    assert labels.count(tok.eos_token_id) == (4 if unmask else 2)


def test_two_turn_sample_from_task(tok) -> None:
    from burnish.tasks import get_task

    ex = get_task("addition").generate(1, "train")[0]
    ids, labels = tokenize_conversation(ex.to_messages()["messages"], tok)
    n_answer = len(ex.answer) + 1  # answer characters and the closing <|end|>
    assert labels[-n_answer:] == ids[-n_answer:]
    assert all(y == IGNORE_INDEX for y in labels[:-n_answer])
    assert tok.decode(ids[-n_answer:]) == ex.answer + "<|end|>"


def test_no_assistant_turn_is_an_error(tok) -> None:
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]
    with pytest.raises(DataError, match="no trainable token"):
        tokenize_conversation(msgs, tok, where="train.jsonl:4")
    with pytest.raises(DataError, match=r"^train\.jsonl:4: .*unmask"):
        tokenize_conversation(msgs, tok, where="train.jsonl:4")
    # With unmask the user turn is trainable, so the same sample is accepted.
    _, labels = tokenize_conversation(msgs, tok, unmask=True)
    assert sum(y != IGNORE_INDEX for y in labels) == len("hi") + 1


def test_empty_assistant_turn_trains_only_the_end_token(tok) -> None:
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]
    _, labels = tokenize_conversation(msgs, tok)
    assert [y for y in labels if y != IGNORE_INDEX] == [tok.eos_token_id]


def test_out_of_vocabulary_character(tok) -> None:
    msgs = [{"role": "user", "content": "café"}, {"role": "assistant", "content": "ok"}]
    with pytest.raises(DataError, match="'é' is outside the tokenizer's vocabulary"):
        tokenize_conversation(msgs, tok, where="row 7")


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], "non-empty list"),
        ("hello", "non-empty list"),
        ([{"content": "x"}], r"messages\[0\] needs 'role' and 'content'"),
        ([{"role": "user"}], r"messages\[0\] needs 'role' and 'content'"),
        (["text"], r"messages\[0\] needs"),
        (
            [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}],
            r"messages\[1\] has role 'robot'",
        ),
        ([{"role": "assistant", "content": 3}], r"messages\[0\]\.content must be a string"),
        ([{"role": "assistant", "content": None}], "must be a string"),
    ],
)
def test_malformed_messages(tok, messages, match: str) -> None:
    with pytest.raises(DataError, match=match):
        validate_messages(messages, "s:1")
    with pytest.raises(DataError, match=r"^s:1: "):
        tokenize_conversation(messages, tok, where="s:1")
