"""Marker profiles: where actions and answers sit in assistant text, per trajectory format.

Ingest counts tool calls with them, the trainer labels loss segments with them, and the agent
runtime and `curate replay` take the code to run from them, so all read the same spans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# smolagents' code-blob pattern: a fenced block, optionally tagged py/python.
_FENCE = re.compile(r"```(?:py|python)?\n(.*?)\n```", re.DOTALL)


@dataclass(frozen=True)
class MarkerProfile:
    """Open/close markers of an action span and, where the format has one, of an answer span, and
    how the format's own runtime reads the code out of its action spans."""

    name: str
    action: tuple[str, str]
    answer: tuple[str, str] | None = None
    fenced: bool = False  # the code is the ```py fenced block(s) inside the span (smolagents 1.13)
    join: str = "\n\n"  # how several code blocks of one turn are joined into one step
    answer_wins: bool = False  # a turn with an answer marker is an answer, whatever else it has (MINT)


PROFILES = {
    p.name: p
    for p in (
        MarkerProfile("smolagents", ("Code:", "<end_code>"), fenced=True),
        MarkerProfile("smolagents_new", ("<code>", "</code>")),
        MarkerProfile("mint", ("<execute>", "</execute>"), ("<solution>", "</solution>"),
                      join="\n", answer_wins=True),
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


def action_code(text: str, prof: MarkerProfile) -> str | None:
    """The code one assistant turn asks to run, as the format's runtime reads it; None when the turn
    has no action (or, under MINT, proposes an answer).

    Fenced profiles take the fenced blocks inside each action span (an unclosed span still has its
    fence); the others take a closed span's inner text. Blocks are stripped and joined by the
    profile's `join` (smolagents: a blank line; MINT: a newline).
    """
    if prof.answer_wins and prof.answer and prof.answer[0] in text:
        return None
    opening, closing = prof.action
    blocks = []
    for span in spans(text, prof):
        if span.kind != "action":
            continue
        inner = text[span.start + len(opening):span.end]
        closed = inner.endswith(closing)
        inner = inner[: -len(closing)] if closed else inner
        if prof.fenced:
            blocks += _FENCE.findall(inner)
        elif closed:
            blocks.append(inner)
    code = prof.join.join(block.strip() for block in blocks if block.strip())
    return code or None
