"""Generation backends: a batch of chats in, a batch of completions out, with stop strings.

Every backend takes the whole batch of in-flight requests at once, so a step of the agent loop is
one batched generation call (transformers: padded batched `generate`; vLLM: one `LLM.generate`;
OpenAI-compatible servers: concurrent requests under a bound).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GenRequest:
    """One completion to generate: the chat so far and how to sample its next assistant message."""

    messages: tuple[dict[str, str], ...]  # {"role", "content"}; the next message is the assistant's
    max_new_tokens: int = 1024
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None  # per-request seed: K samples of one question must differ, each reproducible
    stop: tuple[str, ...] = ()  # generation ends at the first of these; the text keeps the stop string
    prefix: str = ""  # assistant text already written (e.g. a first-thought prefix): generation continues it


@dataclass(frozen=True)
class Completion:
    """What a backend generated for one request (the prefix not included)."""

    text: str
    tokens: int  # generated tokens
    finish: str  # "stop" (a stop string or end of turn) | "length" (max_new_tokens reached)


class Backend(Protocol):
    """A model that completes chats in batches."""

    name: str

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        """One completion per request, in request order."""
        ...

    def close(self) -> None:
        """Free the model (processes, memory)."""
        ...
