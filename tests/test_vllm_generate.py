"""The vllm and openai generation backends on real vLLM (CPU build, `.venv-vllm`) with SmolLM2:
the offline engine, and a vLLM OpenAI-compatible server on 127.0.0.1 reached through the openai
client. Same seed, same text; another seed, another text; stop strings end the text and stay in
it; a prefix is continued; both routes continue the same tokens. Without vLLM, the backend says
how to install it."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from vllm_env import run

from curate.agent.backends import Completion, GenRequest, make_backend
from curate.agent.backends.openai import OpenAIBackend

CHAT = ({"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 12 times 7? Think step by step."})
OTHER = ({"role": "user", "content": "Name three colours."},)
SAMPLE = GenRequest(CHAT, max_new_tokens=24, temperature=1.0, seed=1)
REQUESTS = [
    SAMPLE,
    SAMPLE,  # the same seed again, in the same batch
    replace(SAMPLE, seed=2),
    replace(SAMPLE, stop=(".",)),  # SAMPLE's draws, ended at its first full stop
    GenRequest(OTHER, max_new_tokens=16, temperature=0),
    GenRequest(CHAT, max_new_tokens=16, temperature=0, prefix="Thought: 12 times 7"),
]


def check(done: list[Completion]) -> None:
    """What any backend must give for REQUESTS."""
    first, again, other, stopped = done[:4]
    assert first == again and first.text != other.text
    assert (first.tokens, first.finish) == (24, "length")
    assert "." in first.text  # SmolLM2 with seed 1 writes a sentence (checked, so the next line means something)
    assert stopped.text == first.text[: first.text.index(".") + 1]
    assert stopped.finish == "stop" and stopped.tokens < first.tokens
    assert done[4].tokens > 0 and done[5].tokens > 0


@pytest.fixture(scope="module")
def offline(tmp_path_factory, smollm2_cached) -> list[Completion]:
    """REQUESTS through the offline vLLM backend (one engine, one batch) in `.venv-vllm`."""
    folder = tmp_path_factory.mktemp("probe")
    (folder / "in.json").write_text(json.dumps([asdict(r) for r in REQUESTS]))
    run("python", str(Path(__file__).with_name("vllm_probe.py")), str(smollm2_cached), str(folder / "in.json"),
        str(folder / "out.json"))
    return [Completion(**c) for c in json.loads((folder / "out.json").read_text())]


@pytest.mark.vllm
def test_offline_vllm_backend(offline) -> None:
    check(offline)


@pytest.mark.vllm
def test_openai_backend_against_a_vllm_server(vllm_server, offline) -> None:
    done = OpenAIBackend(vllm_server.name, endpoint=vllm_server.url, max_concurrency=4).generate(REQUESTS)
    check(done)
    # The server renders the chat with the same template the offline backend uses: same tokens in,
    # so the greedy and the seeded continuations are the same.
    assert done == offline


@pytest.mark.vllm
def test_prefix_over_chat_and_completions_endpoints_agree(vllm_server, offline, smollm2_cached) -> None:
    request = REQUESTS[-1]
    chat = OpenAIBackend(vllm_server.name, endpoint=vllm_server.url).generate([request])
    completions = OpenAIBackend(vllm_server.name, endpoint=vllm_server.url, tokenizer=str(smollm2_cached)).generate([request])
    assert chat == completions == [offline[-1]]
    assert not chat[0].text.startswith("Thought")  # the prefix is continued, not repeated


def test_without_vllm_the_backend_says_how_to_install(tiny_model_dir) -> None:
    assert importlib.util.find_spec("vllm") is None  # the message is for installs without the extra
    with pytest.raises(RuntimeError) as failed:
        make_backend("vllm", str(tiny_model_dir))
    assert str(failed.value) == "--backend vllm needs vLLM, which is not installed: pip install 'curate[vllm]'"
