"""Marker profiles: where actions and answers sit in assistant text, per trajectory format.

One parser for every reader of assistant text: ingest counts tool calls with `spans`, the trainer
labels loss segments with them, and the agent runtime (generation, evaluation, replay) stops
generation at a profile's `stop` strings and executes what `action_code` extracts.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class MarkerProfile:
    """Open/close markers of an action span and, where the format has one, of an answer span.

    `code` is the regex (one group) that extracts the code of an action from assistant text, `stop`
    the strings at which one step's generation ends (closing markers are kept in the text, the
    others cut), `bare_code` whether a completion that is itself valid Python counts as code
    (smolagents does this; MINT does not), `join` how several code blocks of one turn become one
    step, `answer_wins` whether a turn holding an answer marker is an answer whatever else it holds
    (MINT's rule), `after_fence` what smolagents appends to an output that ends with a closing ```
    fence, and `example` how one action is written (for error messages).
    """

    name: str
    action: tuple[str, str]
    answer: tuple[str, str] | None = None
    code: str = ""
    stop: tuple[str, ...] = ()
    bare_code: bool = False
    join: str = "\n\n"
    answer_wins: bool = False
    after_fence: str = ""
    example: str = ""


PROFILES = {
    p.name: p
    for p in (
        # smolagents 1.13 (the agent-distillation release): its parse_code_blobs pattern and stop sequences.
        MarkerProfile(
            "smolagents",
            ("Code:", "<end_code>"),
            code=r"```(?:py|python)?\n(.*?)\n```",
            stop=("<end_code>", "Observation:", "Calling tools:"),
            bare_code=True,
            after_fence="<end_code>",
            example="Code:\n```py\n# your Python code\n```<end_code>",
        ),
        MarkerProfile(
            "smolagents_new",
            ("<code>", "</code>"),
            code=r"<code>(.*?)</code>",
            stop=("</code>", "Observation:", "Calling tools:"),
            bare_code=True,
            example="<code>\n# your Python code\n</code>",
        ),
        MarkerProfile(
            "mint",
            ("<execute>", "</execute>"),
            ("<solution>", "</solution>"),
            code=r"<execute>(.*?)</execute>",
            stop=("</execute>", "</solution>"),
            join="\n",
            answer_wins=True,
            example="<execute>\n# your Python code\n</execute>",
        ),
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
    """The code one assistant message asks to run, as the format's runtime reads it, or None.

    Every code block the profile's pattern finds anywhere in the message (smolagents 1.13 searches
    the whole output, not only the `Code:` span), stripped and joined by the profile's `join`; with
    `bare_code`, a message that is itself valid Python is its own code; under `answer_wins`, a
    message with an answer marker has none.
    """
    if prof.answer_wins and prof.answer and prof.answer[0] in text:
        return None
    blocks = [b for m in re.findall(prof.code, text, re.DOTALL) if (b := m.strip())]
    if blocks:
        return prof.join.join(blocks)
    if prof.bare_code and text.strip() and python_ast(text) is not None:
        return text
    return None


def python_ast(text: str) -> ast.Module | None:
    """The module text parses to, or None when it is no Python the interpreter could run."""
    try:
        return ast.parse(text)
    # CPython 3.11 reports its parser's stack bound as a bare MemoryError: its error-message pass
    # recurses once per word of a long line of prose (~1,500 words, 7 KB), and a deep expression
    # overflows the AST conversion with a RecursionError. Neither is code to run.
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def answer_text(text: str, prof: MarkerProfile) -> str | None:
    """The content of the last answer span (MINT's <solution>), or None (or a profile without one)."""
    if prof.answer is None:
        return None
    opening, closing = prof.answer
    start = text.rfind(opening)
    if start < 0:
        return None
    end = text.find(closing, start)
    return text[start + len(opening) : end if end >= 0 else len(text)].strip()


def step_text(text: str, prof: MarkerProfile) -> str:
    """A generated step as the transcript keeps it: a trailing stop string that is no closing
    marker cut (smolagents' stop sequences `Observation:` / `Calling tools:`), surrounding space
    stripped, and smolagents' `<end_code>` added after a closing fence."""
    closers = {prof.action[1], *(prof.answer[1:] if prof.answer else ())}
    for stop in prof.stop:
        if stop not in closers and text.rstrip().endswith(stop):
            text = text.rstrip()[: -len(stop)]
    text = text.strip()
    if prof.after_fence and text.endswith("```"):
        text += prof.after_fence
    return text
