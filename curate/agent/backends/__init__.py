"""Generation backends: chats in, completions out, with stop strings.

Every backend generates a batch at once (`generate`). A backend whose engine batches continuously
also streams (`StreamingBackend.submit`): each request enters the engine the moment it is made and
its completion comes back on a future as soon as it ends, whatever else is in flight (vLLM's engine
driven from a thread; OpenAI-compatible servers: concurrent requests under a bound). The agent loop
streams to those, and gives the others (transformers: padded batched decoding) every waiting request
in one call. `make_backend` builds one by name.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class GenRequest:
    """One completion to generate: the chat so far and how to sample its next assistant message."""

    messages: tuple[dict[str, str], ...]  # {"role", "content"}; the next message is the assistant's
    max_new_tokens: int = 1024
    temperature: float = 1.0  # 0: greedy
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
    model_id: str  # what trajectories record as their teacher_model

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        """One completion per request, in request order."""
        ...

    def close(self) -> None:
        """Free the model (processes, memory)."""
        ...


@runtime_checkable
class StreamingBackend(Backend, Protocol):
    """A backend whose engine takes requests while it generates others."""

    def submit(self, request: GenRequest) -> Future[Completion]:
        """Start one request now, beside those in flight; its completion comes on the future (cancel it to
        drop the request)."""
        ...


# name -> (module, class); the module is imported only when that backend is asked for.
BACKENDS = {
    "transformers": ("curate.agent.backends.transformers", "TransformersBackend"),
    "vllm": ("curate.agent.backends.vllm", "VLLMBackend"),
    "openai": ("curate.agent.backends.openai", "OpenAIBackend"),
}


def make_backend(name: str, model: str, **options: Any) -> Backend:
    """The backend `name` serving `model` (a path, a built-in name or a served model's name).

    Options a backend does not take are an error when set; None means "the backend's default".
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")
    module, cls = BACKENDS[name]
    factory = getattr(importlib.import_module(module), cls)
    given = {k: v for k, v in options.items() if v is not None}
    takes = inspect.signature(factory).parameters
    if unknown := sorted(set(given) - set(takes)):
        raise ValueError(f"backend {name!r} does not take option(s) {', '.join(unknown)}")
    return factory(model, **given)


def endpoint_options(backend: str, endpoint: str | None, timeout: float | None) -> dict[str, Any]:
    """A served model's options for `make_backend`: its endpoint, and for openai a request timeout
    (the other backends refuse an endpoint given to them; None: the backend's default)."""
    return {"endpoint": endpoint, **({"timeout": timeout} if backend == "openai" else {})}


def teacher_id(model: str, adapter: str | None = None) -> str:
    """What trajectories record as their teacher_model: the model's key, then `+` and the adapter's folder."""
    from ...models import student_key

    return student_key(model) if adapter is None else f"{student_key(model)}+{Path(adapter).resolve()}"


def chat_prompt(tokenizer: Any, request: GenRequest) -> str:
    """The text a model continues: the chat template with its generation prompt, then the prefix."""
    chat = tokenizer.apply_chat_template(list(request.messages), tokenize=False, add_generation_prompt=True)
    return chat + request.prefix


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """(text up to and including the earliest stop string, whether one was found)."""
    hits = [(i, s) for s in stop if (i := text.find(s)) >= 0]
    if not hits:
        return text, False
    at, hit = min(hits, key=lambda x: (x[0], -len(x[1])))
    return text[: at + len(hit)], True
