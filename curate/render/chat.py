"""One rendering for scoring, training and export: stored messages -> chat messages -> tokens
with, per token, the assistant turn it belongs to (-1: not supervised).

The supervised span of assistant turn m is every character the chat template emits from the end
of the generation prompt (`<|im_start|>assistant\\n` for ChatML) to the end of that message's
rendering: the content and the end-of-turn marker (`<|im_end|>\\n` for ChatML). A token belongs to
turn m when its first character lies in that span. Scorer and trainer both call `render`, so the
NLL used for selection is measured on exactly the tokens that are trained on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant", "tool-call", "tool-response")
_ROLE_ALIASES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "tool-call": "tool-call",
    "tool_call": "tool-call",
    "tool-response": "tool-response",
    "tool_response": "tool-response",
    "tool": "tool-response",
    "observation": "tool-response",
}
_REFERENCE = re.compile(r"<reference>.*?</reference>", re.DOTALL)
MERGE_SEPARATOR = "\n"


def normalise_role(role: str) -> str:
    """Map a stored role spelling (`MessageRole.TOOL_RESPONSE`, `tool`, ...) to one of ROLES."""
    key = role.strip().removeprefix("MessageRole.").lower()
    if key not in _ROLE_ALIASES:
        raise ValueError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
    return _ROLE_ALIASES[key]


def chat_messages(messages: Iterable[tuple[str, str]], keep_last_user: bool = False) -> list[dict[str, str]]:
    """Apply the distillation role mapping to (normalised role, text) pairs.

    Drops tool-call messages, maps tool-response to user, strips <reference> blocks from the
    task (the first user message), merges consecutive messages of one role with a newline, and
    drops a trailing user message (nothing follows it to learn from), unless `keep_last_user`: the
    agent runtime builds the prompt of a run's next step with this same mapping.
    """
    chat: list[dict[str, str]] = []
    seen_task = False
    for role, text in messages:
        if role == "tool-call":
            continue
        role = "user" if role == "tool-response" else role
        if role == "user" and not seen_task:
            text = _REFERENCE.sub("", text).strip()
            seen_task = True
        if chat and chat[-1]["role"] == role:
            chat[-1]["content"] += MERGE_SEPARATOR + text
        else:
            chat.append({"role": role, "content": text})
    if chat and chat[-1]["role"] == "user" and not keep_last_user:
        chat.pop()
    return chat


class TemplateError(ValueError):
    """The chat template's rendering of a conversation prefix is not a prefix of the whole."""


@dataclass(frozen=True)
class Rendering:
    """A rendered conversation: its text, tokens, and per-token assistant turn (-1: none)."""

    text: str
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    turn: list[int]
    turn_spans: list[tuple[int, int]]
    content_spans: list[tuple[int, int]]

    @property
    def n_turns(self) -> int:
        return len(self.turn_spans)


def _template(tokenizer: Any, messages: Sequence[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt)


def _turn_span(tokenizer: Any, messages: Sequence[dict[str, str]], i: int, text: str) -> tuple[tuple, tuple]:
    """The supervised and the content char span of assistant message i inside `text`, from the
    renderings of the chat before it (with the generation prompt) and up to it."""
    head = _template(tokenizer, messages[:i], generation_prompt=True)
    upto = _template(tokenizer, messages[: i + 1], generation_prompt=False)
    if not (text.startswith(head) and text.startswith(upto) and len(head) <= len(upto)):
        raise TemplateError(
            f"chat template rewrites earlier turns: the rendering up to message {i} "
            "is not a prefix of the whole conversation"
        )
    content = messages[i]["content"]
    found = text.find(content, len(head), len(upto))
    start = len(head) if found < 0 else found
    return (len(head), len(upto)), (start, start + len(content) if found >= 0 else len(upto))


# Stands for message k's content in the masked rendering (private-use characters: never emitted
# by a template, and a content holding one is left to the per-turn renderings).
_SENTINEL = re.compile("\ue000(\\d+)\ue001")


def _content_spans(tokenizer: Any, messages: Sequence[dict[str, str]], text: str) -> list[tuple[int, int]] | None:
    """Where each message's content lies in `text`, from one more rendering with every content
    replaced by a sentinel; None unless the template inserts every content verbatim, in order."""
    if any("\ue000" in m["content"] for m in messages):
        return None
    masked = [{**m, "content": f"\ue000{k}\ue001"} for k, m in enumerate(messages)]
    pieces = _SENTINEL.split(_template(tokenizer, masked, generation_prompt=False))
    if [int(k) for k in pieces[1::2]] != list(range(len(messages))):
        return None
    spans, rebuilt, at = [], [], 0
    for k, message in enumerate(messages):
        at += len(pieces[2 * k])
        spans.append((at, at + len(message["content"])))
        at += len(message["content"])
        rebuilt += [pieces[2 * k], message["content"]]
    return spans if "".join(rebuilt) + pieces[-1] == text else None


def _spans_in_one_pass(
    tokenizer: Any, messages: Sequence[dict[str, str]], text: str, turns: list[int]
) -> tuple[list, list] | None:
    """Every assistant turn's spans from the whole rendering in linear time, or None where the
    template does not fit the pattern this needs.

    The last turn is checked as `_turn_span` checks every turn (the rendering before it, with the
    generation prompt, and the one up to it must be prefixes of the whole); what they add after
    the preceding content (`lead`: end of that message, generation prompt) and after the turn's
    content (`tail`: the end-of-turn marker) must then sit around every other turn too.
    """
    contents = _content_spans(tokenizer, messages, text)
    last = turns[-1]
    if contents is None or turns[0] == 0:
        return None
    (start, end), _ = _turn_span(tokenizer, messages, last, text)
    if not contents[last - 1][1] <= start <= contents[last][0] <= contents[last][1] <= end:
        return None
    lead, tail = text[contents[last - 1][1] : start], text[contents[last][1] : end]
    role = messages[last - 1]["role"]
    spans = []
    for i in turns:
        begin, finish = contents[i - 1][1] + len(lead), contents[i][1] + len(tail)
        if not (
            messages[i - 1]["role"] == role
            and text.startswith(lead, contents[i - 1][1])
            and text.startswith(tail, contents[i][1])
            and begin <= contents[i][0]
        ):
            return None
        spans.append((begin, finish))
    return spans, [contents[i] for i in turns]


def turn_spans(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[str, list, list]:
    """The rendered text, the supervised char span and the content char span of each assistant turn.

    Linear in the chat's length where the template fits `_spans_in_one_pass` (ChatML and the like);
    otherwise every turn is checked against its own renderings (quadratic, exact).
    """
    text = _template(tokenizer, messages, generation_prompt=False)
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not turns:
        return text, [], []
    fast = _spans_in_one_pass(tokenizer, messages, text, turns)
    if fast is not None:
        return text, *fast
    pairs = [_turn_span(tokenizer, messages, i, text) for i in turns]
    return text, [span for span, _ in pairs], [content for _, content in pairs]


def render(tokenizer: Any, messages: Sequence[dict[str, str]]) -> Rendering:
    """Tokenize a chat with the tokenizer's own template and label each token's assistant turn."""
    text, spans, contents = turn_spans(tokenizer, messages)
    return _tokenize(tokenizer, text, spans, contents)


def render_last_turn(tokenizer: Any, messages: Sequence[dict[str, str]]) -> Rendering:
    """The chat up to its last (assistant) message, with only that message supervised, as turn 0.

    The per-turn fallback for templates that rewrite earlier turns (so `render` of the whole chat
    raises): such templates still render the newest message right after its generation prompt,
    which is checked here (TemplateError otherwise).
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("render_last_turn needs a chat that ends with an assistant message")
    text = _template(tokenizer, messages, generation_prompt=False)
    span, content = _turn_span(tokenizer, messages, len(messages) - 1, text)
    return _tokenize(tokenizer, text, [span], [content])


def render_alone(tokenizer: Any, content: str) -> Rendering:
    """An assistant message as the only message of a chat, as turn 0 (IFD's "alone" rendering).

    The template renders the chat as it would any other, with its own default system prompt first
    where it has one. The supervised tokens are what the template emits for an assistant message
    after its generation prompt (as in `render`), read from the message rendered after a user
    message and found at the end of the lone rendering (TemplateError where they are not).
    """
    message = {"role": "assistant", "content": content}
    text = _template(tokenizer, [message], generation_prompt=False)
    paired = [{"role": "user", "content": "?"}, message]
    answer = _template(tokenizer, paired, generation_prompt=False)
    (start, end), _ = _turn_span(tokenizer, paired, 1, answer)
    if not text.endswith(answer[start:end]):
        raise TemplateError(
            "chat template renders an assistant message alone differently from one that answers a user; "
            "IFD's alone pass cannot score its turns"
        )
    span = (len(text) - (end - start), len(text))
    found = text.find(content, span[0])
    return _tokenize(tokenizer, text, [span], [(found, found + len(content)) if found >= 0 else span])


def _tokenize(tokenizer: Any, text: str, spans: list, contents: list) -> Rendering:
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("render needs a fast tokenizer (offsets map markers and turns to tokens)")
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [tuple(o) for o in encoding["offset_mapping"]]
    turn = [-1] * len(offsets)
    m = 0
    for t, (start, _end) in enumerate(offsets):
        while m < len(spans) and start >= spans[m][1]:
            m += 1
        if m < len(spans) and start >= spans[m][0]:
            turn[t] = m
    return Rendering(text, list(encoding["input_ids"]), offsets, turn, spans, contents)


def prefix_consistent(tokenizer: Any, messages: Sequence[dict[str, str]]) -> bool:
    """True when every prefix of the chat tokenizes to a prefix of the whole chat's tokens.

    Then one causal forward pass over the whole conversation gives every turn the same context
    as a separate pass per turn would.
    """
    try:
        whole = render(tokenizer, messages).input_ids
    except TemplateError:
        return False
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        upto = _template(tokenizer, messages[: i + 1], generation_prompt=False)
        ids = tokenizer(upto, add_special_tokens=False)["input_ids"]
        if whole[: len(ids)] != list(ids):
            return False
    return True


def stored_chats(con: Any, trajectory_ids: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    """The chat messages (role mapping applied) of stored trajectories, keyed by id."""
    from ..queries import run

    rows = run(con, "messages", ids=list(trajectory_ids))
    return {
        tid: chat_messages(zip(roles, texts))
        for tid, roles, texts in rows.select("trajectory_id", "roles", "texts").iter_rows()
    }
