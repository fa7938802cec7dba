"""The OpenAI-compatible backend against a small real HTTP server (stdlib) that speaks the chat and
completions API: retries with backoff, timeouts, the concurrency bound, what each request sends,
and how prefixes and stop strings come back. No vLLM needed; tests marked `vllm` use a real one."""

from __future__ import annotations

import time
from http.server import ThreadingHTTPServer

import pytest
from openai_server import Api

from curate.agent.backends import GenRequest
from curate.agent.backends.openai import OpenAIBackend, base_url

CHAT = ({"role": "system", "content": "You are an agent."}, {"role": "user", "content": "New task:\nWhat is 2+2?"})


def test_two_failures_are_retried_with_backoff(api) -> None:
    api.failures = 2
    start = time.perf_counter()
    [done] = OpenAIBackend("m", endpoint=api.url, max_retries=2).generate([GenRequest(CHAT, seed=7)])
    elapsed = time.perf_counter() - start
    assert len(api.calls) == 3 and done.text == "seed=7 t=1.0 <end_code> after"
    # The client waits 0.5 s then 1 s between tries, less up to 25% jitter.
    assert elapsed >= 0.75 * (0.5 + 1.0)


def test_retries_exhausted_fail_in_one_line_naming_the_endpoint(api) -> None:
    api.failures = 2
    with pytest.raises(RuntimeError) as failed:
        OpenAIBackend("m", endpoint=api.url, max_retries=1).generate([GenRequest(CHAT)])
    assert (
        str(failed.value)
        == f"{api.url}: request failed after 1 retries: InternalServerError: Error code: 500 - overloaded (2)"
    )
    assert len(api.calls) == 2


def test_a_request_past_its_timeout_is_retried(api) -> None:
    api.delay = lambda n: 3.0 if n == 1 else 0.0
    [done] = OpenAIBackend("m", endpoint=api.url, timeout=0.5, max_retries=1).generate([GenRequest(CHAT, seed=1)])
    assert done.text.startswith("seed=1 ") and len(api.calls) == 2
    api.calls.clear()
    with pytest.raises(RuntimeError, match=r": request failed after 0 retries: APITimeoutError: Request timed out\.$"):
        OpenAIBackend("m", endpoint=api.url, timeout=0.5, max_retries=0).generate([GenRequest(CHAT, seed=1)])


NO_CHOICES = [
    (
        {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []},
        '{"id":"x","choices":[],"created":0,"model":"m","object":"chat.completion"}',
    ),
    (
        {"object": "error", "message": "The model `m` does not exist."},
        '{"object":"error","message":"The model `m` does not exist."}',
    ),
    ({"id": "x", "choices": None}, '{"id":"x"}'),
]


@pytest.mark.parametrize(("reply", "shown"), NO_CHOICES, ids=["empty", "error-object", "null"])
def test_a_reply_without_choices_fails_in_one_line_naming_the_endpoint(api, reply, shown) -> None:
    api.answer = lambda path, body: reply
    with pytest.raises(RuntimeError) as failed:
        OpenAIBackend("m", endpoint=api.url).generate([GenRequest(CHAT)])
    assert str(failed.value) == f"{api.url}: the server answered without a completion (no choices): {shown}"


def test_a_reply_without_choices_is_shown_cut(api) -> None:
    api.answer = lambda path, body: {"choices": [], "detail": "x" * 1000}
    with pytest.raises(RuntimeError) as failed:
        OpenAIBackend("m", endpoint=api.url).generate([GenRequest(CHAT)])
    assert (
        str(failed.value) == f"{api.url}: the server answered without a completion (no choices): "
        f'{{"choices":[],"detail":"{"x" * 176}...'
    )


def test_each_retry_is_said_on_stderr_with_its_cause(api, capsys) -> None:
    api.failures = 1
    OpenAIBackend("m", endpoint=api.url, max_retries=2).generate([GenRequest(CHAT)])
    assert (
        capsys.readouterr().err == f"note: {api.url}: HTTP 500 from the server; retrying the request (retry 1 of 2)\n"
    )
    api.calls.clear()
    api.failures, api.delay = 0, lambda n: 3.0 if n == 1 else 0.0
    OpenAIBackend("m", endpoint=api.url, timeout=0.5, max_retries=1).generate([GenRequest(CHAT)])
    assert capsys.readouterr().err == f"note: {api.url}: no answer within 0.5 s; retrying the request (retry 1 of 1)\n"
    api.delay = lambda n: 0.0
    OpenAIBackend("m", endpoint=api.url).generate([GenRequest(CHAT)])
    assert capsys.readouterr().err == ""


def test_an_endpoint_that_refuses_connections_is_said_on_stderr(capsys) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.server_close()  # nothing listens there now
    with pytest.raises(
        RuntimeError, match=r": request failed after 1 retries: APIConnectionError: Connection error\.$"
    ):
        OpenAIBackend("m", endpoint=url, max_retries=1).generate([GenRequest(CHAT)])
    assert capsys.readouterr().err == f"note: {url}: cannot connect; retrying the request (retry 1 of 1)\n"


def test_concurrency_is_bounded_and_order_kept(api) -> None:
    api.delay = lambda n: 0.2
    requests = [GenRequest(CHAT, seed=i) for i in range(10)]
    done = OpenAIBackend("m", endpoint=api.url, max_concurrency=3).generate(requests)
    assert api.peak == 3 and len(api.calls) == 10
    assert [c.text.split()[0] for c in done] == [f"seed={i}" for i in range(10)]


def test_what_a_request_sends_and_how_the_stop_string_comes_back(api) -> None:
    request = GenRequest(
        CHAT, max_new_tokens=64, temperature=0.7, top_p=0.9, seed=3, stop=("<end_code>", "Observation:")
    )
    [done] = OpenAIBackend("served-name", endpoint=api.url).generate([request])
    [(path, body)] = api.calls
    assert path == "/v1/chat/completions"
    assert body == {
        "model": "served-name",
        "messages": list(CHAT),
        "max_tokens": 64,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 3,
        "stop": ["<end_code>", "Observation:"],
    }
    # The server left "<end_code>" out and named it; the completion keeps it, like the other backends.
    assert (done.text, done.tokens, done.finish) == ("seed=3 t=0.7 <end_code>", 13, "stop")
    [short] = OpenAIBackend("m", endpoint=api.url).generate([GenRequest(CHAT, max_new_tokens=4, temperature=0)])
    assert short.finish == "length" and "seed" not in api.calls[-1][1]


def test_prefix_continues_the_final_assistant_message(api) -> None:
    OpenAIBackend("m", endpoint=api.url).generate([GenRequest(CHAT, seed=2, prefix="Thought: I will")])
    [(path, body)] = api.calls
    assert path == "/v1/chat/completions"
    assert body["messages"] == [*CHAT, {"role": "assistant", "content": "Thought: I will"}]
    assert (body["add_generation_prompt"], body["continue_final_message"]) == (False, True)


def test_prefix_through_the_completions_endpoint_with_a_local_template(api, tiny_model_dir, tiny_tokenizer) -> None:
    backend = OpenAIBackend("m", endpoint=api.url, tokenizer=str(tiny_model_dir))
    [done] = backend.generate([GenRequest(CHAT, seed=2, prefix="Thought: I will", stop=("<end_code>",))])
    [(path, body)] = api.calls
    chat = tiny_tokenizer.apply_chat_template(list(CHAT), tokenize=False, add_generation_prompt=True)
    assert path == "/v1/completions" and body["prompt"] == chat + "Thought: I will"
    assert chat.endswith("<|im_start|>assistant\n") and done.text == "seed=2 t=1.0 <end_code>"
    backend.generate([GenRequest(CHAT)])  # no prefix: the chat endpoint, the server's own template
    assert api.calls[-1][0] == "/v1/chat/completions"


def test_endpoint_forms() -> None:
    assert base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert base_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000/v1"
    assert base_url("https://api.example.com/v1beta/openai") == "https://api.example.com/v1beta/openai"
    with pytest.raises(ValueError, match="max_concurrency 0: need at least 1"):
        OpenAIBackend("m", max_concurrency=0)
