"""The vLLM engine setup both vLLM backends share (scoring, `curate.score.vllm`; generation,
`curate.agent.backends.vllm`): the import with its install hint, an `LLM` as this machine runs it
best, and its shutdown."""

from __future__ import annotations

import os
from typing import Any

INSTALL = "pip install 'curate[vllm]'"


def import_vllm() -> Any:
    """The `vllm` module, or one clear line saying how to install it."""
    # vLLM logs to stdout by default; curate's stdout carries results (`run_id=` last).
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    try:
        import vllm
    except ImportError:
        raise RuntimeError(f"--backend vllm needs vLLM, which is not installed: {INSTALL}") from None
    return vllm


def make_llm(vllm: Any, **options: Any) -> Any:
    """A `vllm.LLM`; eager on CPUs, where compiling the model takes minutes (4 on 2 cores for
    SmolLM2-135M) that a scoring pass or an agent run never earns back."""
    from vllm.platforms import current_platform

    return vllm.LLM(**options, enforce_eager=current_platform.is_cpu())


def stop_llm(llm: Any) -> None:
    """Stop a `vllm.LLM`'s engine processes now: left to interpreter exit, their shutdown can abort
    the process (exit -6, "terminate called without an active exception") after its work is done."""
    llm.llm_engine.engine_core.shutdown()
