"""Fixtures shared by the suite: a tiny offline model, SmolLM2, the shared data folder, and a vLLM
OpenAI-compatible server (tests marked `vllm`, run in `.venv-vllm` through subprocesses)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from curate.shared_data import require_shared_data

# Torch's OpenMP threads sleep instead of spinning between calls: two xdist workers share CI's 2 cores,
# where spinning made the in-process model tests several times slower. `curate` and the `curate`
# subprocesses of tests keep it (curate.engine.cpu.threads leaves a user's own setting alone).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


# The longest files first (a full run's durations, longest first): under `-n 2 --dist loadfile` a long
# file that is handed out last keeps one worker busy alone at the end while the other has nothing left.
LONGEST = (
    "tests/agent/test_vllm_generate.py",
    "tests/eval/test_eval_models.py",
    "tests/cluster/test_ray.py",
    "tests/agent/test_generate.py",
    "tests/score/test_vllm_score.py",
    "tests/agent/test_generate_smollm2.py",
    "tests/score/test_score.py",
    "tests/eval/test_eval.py",
    "tests/train/test_train_recipe.py",
    "tests/score/test_rsr_ifd.py",
    "tests/models/test_smollm2.py",
)


def pytest_configure(config: pytest.Config) -> None:
    # xdist hands files out in the collection order only without its reordering by test count (on by
    # default), which put the files of a few long tests (vLLM's, SmolLM2's) last, undoing LONGEST.
    config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    rank = {path: i for i, path in enumerate(LONGEST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(LONGEST)))  # stable: the rest keep their order

    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 that nothing may reach (hostile steps try): accept() times out."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    yield server
    server.close()


@pytest.fixture
def api():
    """A stdlib OpenAI-compatible server on 127.0.0.1 (tests/openai_server.py)."""
    from openai_server import start

    server = start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real question sets and agent runs (always present in CI)."""
    return require_shared_data()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2 model + ChatML BPE tokenizer folder, built once per session."""
    from curate.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype="float32").eval()


@pytest.fixture(scope="session")
def smollm2_cached() -> Path:
    """The SmolLM2-135M-Instruct float32 folder, built once per machine (the `smollm2` built-in)."""
    from curate.models.smollm2 import materialise_smollm2

    return materialise_smollm2("float32")


@pytest.fixture(scope="session")
def vllm_server(smollm2_cached: Path, tmp_path_factory: pytest.TempPathFactory):
    """A vLLM OpenAI-compatible server of SmolLM2 on 127.0.0.1, started once (~2 min on 2 cores)."""
    from vllm_env import Server

    server = Server(smollm2_cached, "smollm2", tmp_path_factory.mktemp("vllm") / "server.log")
    yield server
    server.stop()
