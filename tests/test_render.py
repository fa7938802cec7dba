"""The one rendering: role mapping and the exact supervised tokens of each assistant turn."""

from __future__ import annotations

import pytest

from curate.render import TemplateError, chat_messages, normalise_role, prefix_consistent, render

RAW = [
    ("system", "You solve tasks with code."),
    ("user", "New task:\nWhat is 2+2? <reference>gold: 4</reference>"),
    ("assistant", "Thought: add.\nCode:\n```py\nprint(2+2)\n```<end_code>"),
    ("tool-call", "Calling tools:\n[{'id': 'call_1'}]"),
    ("tool-response", "Call id: call_1\nObservation:\n4"),
    ("assistant", "Thought: done. é 🙂\nCode:\n```py\nfinal_answer(4)\n```<end_code>"),
    ("tool-response", "Call id: call_2\nObservation:\n4"),
]


def test_role_spellings() -> None:
    assert normalise_role("MessageRole.TOOL_RESPONSE") == "tool-response"
    assert normalise_role("MessageRole.SYSTEM") == "system"
    assert normalise_role("tool") == "tool-response"
    with pytest.raises(ValueError, match="unknown role 'wizard'"):
        normalise_role("wizard")


def test_role_mapping() -> None:
    chat = chat_messages(RAW)
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "user", "assistant"]
    assert chat[1]["content"] == "New task:\nWhat is 2+2?"
    assert chat[3]["content"] == "Call id: call_1\nObservation:\n4"


def test_consecutive_roles_merge() -> None:
    chat = chat_messages([("user", "a"), ("tool-response", "b"), ("assistant", "c"), ("assistant", "d")])
    assert chat == [{"role": "user", "content": "a\nb"}, {"role": "assistant", "content": "c\nd"}]


def test_supervised_tokens_are_content_and_end_of_turn(tiny_tokenizer) -> None:
    chat = chat_messages(RAW)
    r = render(tiny_tokenizer, chat)
    assert r.n_turns == 2
    for m, message in enumerate(m for m in chat if m["role"] == "assistant"):
        ids = [i for i, t in zip(r.input_ids, r.turn) if t == m]
        assert tiny_tokenizer.decode(ids) == message["content"] + "<|im_end|>\n"
    unsupervised = tiny_tokenizer.decode([i for i, t in zip(r.input_ids, r.turn) if t < 0])
    assert "<|im_start|>assistant\n" in unsupervised and "Observation" in unsupervised
    assert r.text[slice(*r.content_spans[1])] == chat[4]["content"]


def test_prefix_property_holds_for_chatml(tiny_tokenizer) -> None:
    assert prefix_consistent(tiny_tokenizer, chat_messages(RAW))


def test_template_that_rewrites_history_is_detected(tiny_tokenizer) -> None:
    # A template that renders only the last two messages changes earlier turns' context.
    tokenizer = tiny_tokenizer.__class__.from_pretrained(tiny_tokenizer.name_or_path)
    tokenizer.chat_template = (
        "{% for m in messages[-2:] %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    chat = chat_messages(RAW)
    assert not prefix_consistent(tokenizer, chat)
    with pytest.raises(TemplateError, match="rewrites earlier turns"):
        render(tokenizer, chat)
