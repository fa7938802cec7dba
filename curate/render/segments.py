"""Loss segments: per token of the one rendering, reason / action / final, or no label.

Rules (DESIGN "Segments for the loss"), applied to the supervised tokens that `curate.render.render`
marks (assistant content and its end-of-turn marker):

- *action*: a token overlapping an action or answer span of the marker profile (markers
  included). Spans are found in the rendered text and mapped to tokens through the tokenizer's
  character offsets, so a marker split across tokens, or a token that straddles a marker's edge
  (`" Code"`), still counts. An unclosed span runs to the end of its turn's content.
- *final*: a token overlapping the last action-or-answer span of the whole trajectory.
- *reason*: every other supervised token.
- End-of-turn tokens (`<|im_end|>` and the newline the template emits after it) take the segment
  of the last content token of their turn: stopping right after `<end_code>` is part of emitting
  the action, and stopping after the final answer is part of the final decision.
- Template tokens between the assistant header and the content (none for ChatML) are reason.
- An answer span that is not the last span (MINT: a rejected `<solution>`) is an action: like a
  smolagents `final_answer(...)` code block, it is a decision the agent emits.

Unsupervised tokens (system, user, observation, headers) carry UNSUPERVISED (-1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from curate.render import render

from .markers import MarkerProfile, spans

SEGMENTS = ("reason", "action", "final")
REASON, ACTION, FINAL = range(3)
UNSUPERVISED = -1


@dataclass(frozen=True)
class Labelled:
    """Token ids of a rendered trajectory and, per token, its segment (UNSUPERVISED: no loss)."""

    input_ids: list[int]
    segments: list[int]


def _overlaps(token: tuple[int, int], span: tuple[int, int]) -> bool:
    start, end = token
    # A zero-width token (none in byte-level BPE, but possible elsewhere) counts where it sits.
    return span[0] < max(end, start + 1) and start < span[1]


def label_segments(tokenizer: Any, messages: Sequence[dict[str, str]], prof: MarkerProfile) -> Labelled:
    """Render a chat (roles already mapped) and label each token reason/action/final or -1."""
    r = render(tokenizer, messages)
    marked = [
        (start + s.start, start + s.end) for start, end in r.content_spans for s in spans(r.text[start:end], prof)
    ]
    final = marked[-1] if marked else None
    segments = [UNSUPERVISED] * len(r.input_ids)
    last_content = REASON  # segment of the latest content token of the current turn
    current_turn = -1
    p = 0  # first marked span that ends after the current token starts
    for t, (offset, m) in enumerate(zip(r.offsets, r.turn)):
        if m < 0:
            continue
        if m != current_turn:
            current_turn, last_content = m, REASON
        while p < len(marked) and marked[p][1] <= offset[0]:
            p += 1
        content_start, content_end = r.content_spans[m]
        if offset[0] >= content_end:
            segments[t] = last_content
            continue
        if final is not None and _overlaps(offset, final):
            segments[t] = FINAL
        elif p < len(marked) and _overlaps(offset, marked[p]):
            segments[t] = ACTION
        else:
            segments[t] = REASON
        if offset[0] >= content_start:
            last_content = segments[t]
    return Labelled(r.input_ids, segments)
