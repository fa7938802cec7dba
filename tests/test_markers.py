"""Marker profiles: spans and tool-call counts per format."""

from __future__ import annotations

import pytest

from curate.markers import PROFILES, Span, profile, spans, tool_calls


def test_smolagents_spans_include_markers_and_unclosed_runs_to_end() -> None:
    text = "Thought: a\nCode:\n```py\nx=1\n```<end_code>\nThought: b\nCode:\n```py\ny"
    found = spans(text, PROFILES["smolagents"])
    assert [(text[s.start:s.end][:5], text[s.start:s.end][-5:], s.kind) for s in found] == [
        ("Code:", "code>", "action"), ("Code:", "```py\ny"[-5:], "action")]
    assert found[1].end == len(text)


def test_mint_answer_and_action_in_order() -> None:
    text = "<execute>print(1)</execute> then <solution>1</solution>"
    assert spans(text, PROFILES["mint"]) == [Span(0, 27, "action"), Span(33, 55, "answer")]
    assert tool_calls([text, "<execute>x</execute>"], PROFILES["mint"]) == 2


def test_unknown_profile_is_named() -> None:
    with pytest.raises(ValueError, match="unknown marker profile 'xml'"):
        profile("xml")


def test_action_code_reads_code_as_each_runtime_does() -> None:
    from curate.markers import action_code

    smol = PROFILES["smolagents"]
    text = "Thought: maybe ```py\nnot_this()\n```\nCode:\n```py\nx = 1\nprint(x)\n```<end_code>"
    assert action_code(text, smol) == "x = 1\nprint(x)"
    assert action_code("Thought: a\nCode:\n```python\ny = 2\n```", smol) == "y = 2"  # unclosed span, fenced
    assert action_code("Thought: no code at all", smol) is None
    assert action_code("<code>z = 3</code> and <code>print(z)</code>", PROFILES["smolagents_new"]) == "z = 3\n\nprint(z)"
    mint = PROFILES["mint"]
    assert action_code("<execute> a = 1 </execute> then <execute>\nprint(a)\n</execute>", mint) == "a = 1\nprint(a)"
    assert action_code("<execute>a = 1</execute> The answer is <solution> 1 </solution>", mint) is None
    assert action_code("<execute>a = 1", mint) is None  # MINT runs closed blocks only
    assert action_code("<execute>  </execute>", mint) is None
