"""Marker profiles: where actions and answers sit in assistant text, per trajectory format.

Ingest counts tool calls with them and the trainer labels loss segments with them, so both read
the same spans.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MarkerProfile:
    """Open/close markers of an action span and, where the format has one, of an answer span."""

    name: str
    action: tuple[str, str]
    answer: tuple[str, str] | None = None


PROFILES = {
    p.name: p
    for p in (
        MarkerProfile("smolagents", ("Code:", "<end_code>")),
        MarkerProfile("smolagents_new", ("<code>", "</code>")),
        MarkerProfile("mint", ("<execute>", "</execute>"), ("<solution>", "</solution>")),
    )
}


def profile(name: str) -> MarkerProfile:
    """The profile of that name; a clear error listing the known ones."""
    if name not in PROFILES:
        raise ValueError(f"unknown marker profile {name!r} (known: {', '.join(PROFILES)})")
    return PROFILES[name]


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str  # "action" or "answer"


def spans(text: str, prof: MarkerProfile) -> list[Span]:
    """Action and answer spans in text, markers included; an unclosed span runs to the end."""
    markers = [(prof.action, "action")] + ([(prof.answer, "answer")] if prof.answer else [])
    found: list[Span] = []
    pos = 0
    while True:
        opens = [(text.find(o, pos), (o, c), kind) for (o, c), kind in markers]
        opens = [x for x in opens if x[0] >= 0]
        if not opens:
            return found
        start, (_open, close), kind = min(opens, key=lambda x: x[0])
        close_at = text.find(close, start + len(_open))
        end = len(text) if close_at < 0 else close_at + len(close)
        found.append(Span(start, end, kind))
        pos = end


def tool_calls(assistant_texts: list[str], prof: MarkerProfile) -> int:
    """Number of action spans (code actions) over a trajectory's assistant turns."""
    return sum(s.kind == "action" for text in assistant_texts for s in spans(text, prof))
