"""The OpenAI-compatible backend: any server speaking the chat completions API (vLLM's
`vllm.entrypoints.openai.api_server` / `vllm serve`, SGLang, llama.cpp's server, a hosted API)
through the `openai` client.

A batch goes out as concurrent requests under a bound (`max_concurrency`), each with its own seed,
temperature, top-p, token budget and stop strings. Timeouts and retries are the client's own: a
request that times out, cannot connect, or gets 408/409/429/5xx is retried up to `max_retries`
times with exponential backoff and jitter (0.5 s doubling to 8 s, or the server's Retry-After);
after that the batch fails with one line naming the endpoint.

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
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from . import Completion, GenRequest, chat_prompt

DEFAULT_ENDPOINT = "http://127.0.0.1:8000/v1"


def base_url(endpoint: str) -> str:
    """The API root: a bare server address gets the usual `/v1`."""
    return endpoint.rstrip("/") + "/v1" if urlsplit(endpoint).path.strip("/") == "" else endpoint


def kept_stop(choice: Any, text: str, stop: Sequence[str]) -> str:
    """The stop string the server matched and left out of `text` ("" when none or unknown)."""
    extra = choice.model_extra or {}
    hit = extra.get("stop_reason", extra.get("matched_stop"))
    if choice.finish_reason != "stop" or hit not in stop or text.endswith(hit):
        return ""
    return hit


class OpenAIBackend:
    """A model behind an OpenAI-compatible endpoint; a batch is concurrent requests under a bound."""

    name = "openai"

    def __init__(self, model: str, endpoint: str = DEFAULT_ENDPOINT, max_concurrency: int = 64,
                 timeout: float = 600.0, max_retries: int = 4, tokenizer: str | None = None) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency {max_concurrency}: need at least 1")
        self.model_id = model
        self.endpoint = base_url(endpoint)
        self.max_concurrency, self.timeout, self.max_retries = max_concurrency, timeout, max_retries
        self.tokenizer = None
        if tokenizer:
            from transformers import AutoTokenizer

            from ...models import resolve_student

            self.tokenizer = AutoTokenizer.from_pretrained(resolve_student(tokenizer))

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        """One completion per request, in request order."""
        import openai

        try:
            return asyncio.run(self._batch(requests))
        except openai.APIError as error:
            detail = " ".join(str(error).split())
            raise RuntimeError(f"{self.endpoint}: request failed after {self.max_retries} retries: "
                               f"{type(error).__name__}: {detail}") from None

    async def _batch(self, requests: Sequence[GenRequest]) -> list[Completion]:
        import openai

        bound = asyncio.Semaphore(self.max_concurrency)
        async with openai.AsyncOpenAI(base_url=self.endpoint, api_key=os.environ.get("OPENAI_API_KEY") or "none",
                                      timeout=self.timeout, max_retries=self.max_retries) as client:
            return await asyncio.gather(*(self._one(client, bound, r) for r in requests))

    async def _one(self, client: Any, bound: asyncio.Semaphore, request: GenRequest) -> Completion:
        sampling = {"max_tokens": request.max_new_tokens, "temperature": request.temperature,
                    "top_p": request.top_p, "seed": request.seed, "stop": list(request.stop) or None}
        sampling = {k: v for k, v in sampling.items() if v is not None}
        async with bound:
            if request.prefix and self.tokenizer is not None:
                prompt = chat_prompt(self.tokenizer, request)
                reply = await client.completions.create(model=self.model_id, prompt=prompt, **sampling)
                choice = reply.choices[0]
                text = choice.text
            else:
                messages = list(request.messages)
                extra = None
                if request.prefix:
                    messages.append({"role": "assistant", "content": request.prefix})
                    extra = {"add_generation_prompt": False, "continue_final_message": True}
                reply = await client.chat.completions.create(model=self.model_id, messages=messages,
                                                             extra_body=extra, **sampling)
                choice = reply.choices[0]
                text = choice.message.content or ""
        tokens = reply.usage.completion_tokens if reply.usage else 0
        return Completion(text + kept_stop(choice, text, request.stop), tokens,
                          "length" if choice.finish_reason == "length" else "stop")

    def close(self) -> None:
        """Nothing to free: each batch opens and closes its own connections."""
