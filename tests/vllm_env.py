"""The vLLM environment as the suite drives it: `.venv-vllm` (made by `.ci/setup-vllm`; vLLM pins
other library versions than `.venv`) and commands run there as subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

VENV = Path(__file__).resolve().parents[1] / ".venv-vllm"
# vLLM's CPU build reserves 92% of RAM for its KV cache unless told otherwise; 1 GiB holds ~23k
# SmolLM2 tokens. No usage reports, no Hub look-ups: nothing here has network.
ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1"}


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
    """This process's environment plus the vLLM settings above."""
    return {**os.environ, **ENV}


def run(name: str, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    """Run `.venv-vllm/bin/NAME ARGS`; a non-zero exit fails the test with its output."""
    command = [str(vllm_bin(name)), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=environment(), start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        _kill_group(process.pid)  # vLLM engine processes left behind by a timeout or a crash
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if done.returncode:
        pytest.fail(f"{name} {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return done


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
