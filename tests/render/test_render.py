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


def per_turn_spans(tokenizer, chat) -> list[tuple[int, int]]:
    """The definition, turn by turn: from the end of the rendering before the turn (with the
    generation prompt) to the end of the rendering up to it."""
    spans = []
    for i, message in enumerate(chat):
        if message["role"] == "assistant":
            head = tokenizer.apply_chat_template(chat[:i], tokenize=False, add_generation_prompt=True)
            upto = tokenizer.apply_chat_template(chat[: i + 1], tokenize=False)
            spans.append((len(head), len(upto)))
    return spans


def long_chat(turns: int) -> list[dict[str, str]]:
    chat = [{"role": "system", "content": "Solve."}, {"role": "user", "content": "New task:\n2+2? é"}]
    for m in range(turns):
        chat += [
            {"role": "assistant", "content": f"Thought: step {m} 🙂\nCode:\n```py\nprint({m})\n```<end_code>"},
            {"role": "user", "content": f"Observation:\n{m}  "},
        ]
    return chat[:-1]


TEMPLATES = {
    # the default system prompt only on a chat without one, an end marker without a newline
    "default system": (
        "{% for m in messages %}{% if loop.first and messages[0]['role'] != 'system' %}<|im_start|>system\n"
        "Be brief.<|im_end|>\n{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    # trims contents: not verbatim, so every turn is checked on its own renderings
    "trim": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] | trim }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
}


@pytest.mark.parametrize("template", [None, *TEMPLATES])
def test_turn_spans_match_the_per_turn_renderings(tiny_tokenizer, template) -> None:
    tokenizer = tiny_tokenizer.__class__.from_pretrained(tiny_tokenizer.name_or_path)
    if template:
        tokenizer.chat_template = TEMPLATES[template]
    for chat in (
        chat_messages(RAW),
        long_chat(7),
        long_chat(7)[1:],
        [{"role": "user", "content": "\ue000 hi"}, {"role": "assistant", "content": "\ue0001\ue001"}],
    ):
        r = render(tokenizer, chat)
        assert r.turn_spans == per_turn_spans(tokenizer, chat)
        contents = [m["content"] for m in chat if m["role"] == "assistant"]
        if template != "trim":
            assert [r.text[slice(*span)] for span in r.content_spans] == contents


def test_rendering_is_linear_in_turns(tiny_tokenizer, monkeypatch) -> None:
    """The template renders a chat a fixed number of times, whatever its number of turns."""
    calls = []
    original = tiny_tokenizer.apply_chat_template
    monkeypatch.setattr(
        tiny_tokenizer,
        "apply_chat_template",
        lambda messages, **kw: calls.append(len(messages)) or original(messages, **kw),
    )
    for turns in (3, 300):
        calls.clear()
        r = render(tiny_tokenizer, long_chat(turns))
        assert r.n_turns == turns and len(calls) == 4
        assert sum(calls) < 4 * len(long_chat(turns))
