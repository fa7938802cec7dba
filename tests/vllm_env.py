"""The vLLM environment as the suite drives it: `.venv-vllm` (made by `.ci/setup-vllm`; vLLM pins
other library versions than `.venv`), commands run there as subprocesses, and a vLLM
OpenAI-compatible server on 127.0.0.1 that one test session starts once and shares."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

VENV = Path(__file__).resolve().parents[1] / ".venv-vllm"
# vLLM's CPU build reserves 92% of RAM for its KV cache unless told otherwise; 1 GiB holds ~23k
# SmolLM2 tokens. Idle OpenMP threads sleep instead of spinning (spinning threads slow everything
# down on a loaded machine). No usage reports, no Hub look-ups: nothing here has network.
ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
}
START_TIMEOUT_S = 900


def vllm_bin(name: str) -> Path:
    """An executable of `.venv-vllm`: a failure under CI (it must be there), a skip elsewhere."""
    path = VENV / "bin" / name
    if not path.is_file():
        reason = f"{VENV} not found: make it with `bash .ci/setup-vllm` (about 5 minutes)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


def environment() -> dict[str, str]:
    """This process's environment plus the vLLM settings above, writing bytecode as modules are first
    imported (.ci/setup-vllm compiles only what its check imports), whatever this machine's default."""
    inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**inherited, **ENV}


def run(name: str, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    """Run `.venv-vllm/bin/NAME ARGS`; a non-zero exit fails the test with its output."""
    command = [str(vllm_bin(name)), *args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(), start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        _kill_group(process.pid)  # vLLM engine processes left behind by a timeout or a crash
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if done.returncode:
        pytest.fail(f"{name} {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return done


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m vllm.entrypoints.openai.api_server` serving one model folder on 127.0.0.1."""

    def __init__(self, model_dir: Path, name: str, log: Path, max_model_len: int = 4096) -> None:
        self.name, self.log = name, log
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}/v1"
        command = [
            str(vllm_bin("python")),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(model_dir),
            "--served-model-name",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dtype",
            "float32",
            "--max-model-len",
            str(max_model_len),
            "--disable-log-stats",
            "--enforce-eager",  # compiling the model on CPUs takes minutes
            "--no-enable-chunked-prefill",  # seeded requests on CPUs (docs/vllm-and-servers.md#on-cpus)
        ]
        with log.open("w") as out:
            # Its own process group: vLLM's engine processes go down with it, even after a crash.
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=environment(), start_new_session=True
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                pytest.fail(f"vLLM server exited {self.process.returncode}:\n{self.log.read_text()[-6000:]}")
            try:
                with urllib.request.urlopen(self.url.removesuffix("/v1") + "/health", timeout=5) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(1)
        self.stop()
        pytest.fail(f"vLLM server not ready after {START_TIMEOUT_S} s:\n{self.log.read_text()[-6000:]}")

    def stop(self) -> None:
        """Terminate the server's process group; kill what is left after 30 s."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        _kill_group(self.process.pid)  # engine processes that outlived the server


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
