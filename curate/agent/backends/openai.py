"""The OpenAI-compatible backend: any server speaking the chat completions API (vLLM's
`vllm.entrypoints.openai.api_server` / `vllm serve`, SGLang, llama.cpp's server, a hosted API)
through the `openai` client.

Requests go out concurrently under a bound (`max_concurrency`), each with its own seed,
temperature, top-p, token budget and stop strings: `submit` sends one at once and its completion
comes back on a future (the agent loop keeps the server's continuous batching fed), `generate` sends
a batch. They share one client, on an event loop in a thread of the backend's own. Timeouts and retries are the client's own: a
request that times out, cannot connect, or gets 408/409/429/5xx is retried up to `max_retries`
times with exponential backoff and jitter (0.5 s doubling to 8 s, or the server's Retry-After);
after that the request fails with one line naming the endpoint. Each retry is said on stderr with its
cause (an HTTP status, no answer within the timeout, no connection), so a hung server is not silent. A
reply without a completion (an empty `choices`) fails the request in one line showing what came back.

An assistant prefix is continued by sending it as the final assistant message with
`add_generation_prompt: false, continue_final_message: true` (the chat extension of vLLM and
SGLang). For servers without it, give `tokenizer`: prefixed requests then go to the completions
endpoint with the prompt rendered here by that tokenizer's chat template, as the local backends do.

The OpenAI API drops the stop string that ended a completion; it is put back when the server says
which one matched (vLLM: `stop_reason`, SGLang: `matched_stop`), so the text keeps it as the other
backends' does. The API key is $OPENAI_API_KEY (servers without auth need none).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from . import Completion, GenRequest, chat_prompt

DEFAULT_ENDPOINT = "http://127.0.0.1:8000/v1"
DEFAULT_TIMEOUT = 600.0
SHOWN = 200  # characters of a bad reply shown in its error
# Why the last attempt of the request this asyncio task sends failed (each request is its own task).
_cause: ContextVar[str] = ContextVar("openai_retry_cause", default="no reply")


def base_url(endpoint: str) -> str:
    """The API root: a bare server address gets the usual `/v1`."""
    return endpoint.rstrip("/") + "/v1" if urlsplit(endpoint).path.strip("/") == "" else endpoint


def kept_stop(choice: Any, text: str, stop: Sequence[str]) -> str:
    """The stop string the server matched and left out of `text` ("" when none or unknown)."""
    extra = choice.model_extra or {}
    hit = extra.get("stop_reason", extra.get("matched_stop"))
    if choice.finish_reason != "stop" or not isinstance(hit, str) or hit not in stop or text.endswith(hit):
        return ""
    return hit


def first_choice(reply: Any, endpoint: str) -> Any:
    """The reply's first choice; a reply with none is the server's fault, said with what it sent."""
    if reply.choices:
        return reply.choices[0]
    sent = reply.model_dump_json(exclude_none=True)
    sent = sent if len(sent) <= SHOWN else sent[:SHOWN] + "..."
    raise RuntimeError(f"{endpoint}: the server answered without a completion (no choices): {sent}")


def http_library() -> Any:
    """The HTTP library under the openai client: httpx (openai 1.x) or its successor httpx2."""
    import openai

    return importlib.import_module(openai.DefaultAsyncHttpxClient.__mro__[1].__module__.partition(".")[0])


def note(line: str) -> None:
    """A line on stderr that leaves a progress bar intact."""
    from tqdm import tqdm

    tqdm.write(f"note: {line}", file=sys.stderr)


class RetryNotes:
    """An HTTP transport around the client's own that says, once per retry of a request (the openai
    client numbers its tries in the x-stainless-retry-count header), why the last try failed."""

    def __init__(self, endpoint: str, timeout: float, max_retries: int, connections: int) -> None:
        self.http = http_library()
        limits = self.http.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.inner = self.http.AsyncHTTPTransport(limits=limits)
        self.endpoint, self.timeout, self.max_retries = endpoint, timeout, max_retries

    async def handle_async_request(self, request: Any) -> Any:
        """Send one try of a request, noting why it failed for the next try to say."""
        retry = request.headers.get("x-stainless-retry-count", "0")
        if retry != "0":
            note(f"{self.endpoint}: {_cause.get()}; retrying the request (retry {retry} of {self.max_retries})")
        try:
            response = await self.inner.handle_async_request(request)
        except self.http.TimeoutException:
            _cause.set(f"no answer within {self.timeout:g} s")
            raise
        except self.http.ConnectError:
            _cause.set("cannot connect")
            raise
        except self.http.TransportError as error:
            _cause.set(f"the connection failed ({type(error).__name__})")
            raise
        _cause.set(f"HTTP {response.status_code} from the server")
        return response

    async def __aenter__(self) -> RetryNotes:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.inner.__aexit__(*exc)

    async def aclose(self) -> None:
        """Close the wrapped transport's connections."""
        await self.inner.aclose()


class OpenAIBackend:
    """A model behind an OpenAI-compatible endpoint; requests run concurrently under a bound."""

    name = "openai"

    def __init__(
        self,
        model: str,
        endpoint: str = DEFAULT_ENDPOINT,
        max_concurrency: int = 64,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 4,
        tokenizer: str | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency {max_concurrency}: need at least 1")
        self.model_id = model
        self.endpoint = base_url(endpoint)
        self.max_concurrency, self.timeout, self.max_retries = max_concurrency, timeout, max_retries
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._bound: asyncio.Semaphore | None = None
        self.tokenizer = None
        if tokenizer:
            from transformers import AutoTokenizer

            from ...models import resolve_student

            self.tokenizer = AutoTokenizer.from_pretrained(resolve_student(tokenizer))

    def submit(self, request: GenRequest) -> Future[Completion]:
        """Send one request now, beside those in flight; its completion comes on the future."""
        return asyncio.run_coroutine_threadsafe(self._request(request), self._running())

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        """One completion per request, in request order."""
        return [future.result() for future in [self.submit(r) for r in requests]]

    def _running(self) -> asyncio.AbstractEventLoop:
        """The event loop the requests run on, started at the first request."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="curate-openai", daemon=True).start()
                self._client, self._bound = asyncio.run_coroutine_threadsafe(self._open(), loop).result()
                self._loop = loop
            return self._loop

    async def _open(self) -> tuple[Any, asyncio.Semaphore]:
        import openai

        transport = RetryNotes(self.endpoint, self.timeout, self.max_retries, self.max_concurrency)
        client = openai.AsyncOpenAI(
            base_url=self.endpoint,
            api_key=os.environ.get("OPENAI_API_KEY") or "none",
            timeout=self.timeout,
            max_retries=self.max_retries,
            # RetryNotes is a transport by duck typing: its base would be httpx's or httpx2's, known only at run time
            http_client=openai.DefaultAsyncHttpxClient(transport=transport),  # type: ignore[arg-type]
        )
        return client, asyncio.Semaphore(self.max_concurrency)

    async def _request(self, request: GenRequest) -> Completion:
        import openai

        assert self._bound is not None  # set with the loop
        try:
            return await self._one(self._client, self._bound, request)
        except openai.APIError as error:
            detail = " ".join(str(error).split())
            raise RuntimeError(
                f"{self.endpoint}: request failed after {self.max_retries} retries: {type(error).__name__}: {detail}"
            ) from None

    async def _one(self, client: Any, bound: asyncio.Semaphore, request: GenRequest) -> Completion:
        sampling = {
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "stop": list(request.stop) or None,
        }
        sampling = {k: v for k, v in sampling.items() if v is not None}
        async with bound:
            if request.prefix and self.tokenizer is not None:
                prompt = chat_prompt(self.tokenizer, request)
                reply = await client.completions.create(model=self.model_id, prompt=prompt, **sampling)
                choice = first_choice(reply, self.endpoint)
                text = choice.text
            else:
                messages = list(request.messages)
                extra = None
                if request.prefix:
                    messages.append({"role": "assistant", "content": request.prefix})
                    extra = {"add_generation_prompt": False, "continue_final_message": True}
                reply = await client.chat.completions.create(
                    model=self.model_id, messages=messages, extra_body=extra, **sampling
                )
                choice = first_choice(reply, self.endpoint)
                text = choice.message.content or ""
        tokens = reply.usage.completion_tokens if reply.usage else 0
        return Completion(
            text + kept_stop(choice, text, request.stop),
            tokens,
            "length" if choice.finish_reason == "length" else "stop",
        )

    def close(self) -> None:
        """Close the connections and stop the event loop's thread."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            asyncio.run_coroutine_threadsafe(self._client.close(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
