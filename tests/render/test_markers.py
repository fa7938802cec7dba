"""Marker profiles: spans and tool-call counts per format."""

from __future__ import annotations

import pytest

from curate.render.markers import PROFILES, Span, profile, spans, tool_calls


def test_smolagents_spans_include_markers_and_unclosed_runs_to_end() -> None:
    text = "Thought: a\nCode:\n```py\nx=1\n```<end_code>\nThought: b\nCode:\n```py\ny"
    found = spans(text, PROFILES["smolagents"])
    assert [(text[s.start : s.end][:5], text[s.start : s.end][-5:], s.kind) for s in found] == [
        ("Code:", "code>", "action"),
        ("Code:", "```py\ny"[-5:], "action"),
    ]
    assert found[1].end == len(text)


def test_mint_answer_and_action_in_order() -> None:
    text = "<execute>print(1)</execute> then <solution>1</solution>"
    assert spans(text, PROFILES["mint"]) == [Span(0, 27, "action"), Span(33, 55, "answer")]
    assert tool_calls([text, "<execute>x</execute>"], PROFILES["mint"]) == 2


def test_unknown_profile_is_named() -> None:
    with pytest.raises(ValueError, match="unknown marker profile 'xml'"):
        profile("xml")
