"""The vLLM engine setup both vLLM backends share (scoring, `curate.score.vllm`; generation,
`curate.agent.backends.vllm`): the import with its install hint, an `LLM` as this machine runs it
best, its shutdown, and the one line that says why an engine died."""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

INSTALL = "pip install 'curate[vllm]'"
_CAUSE_CHARS = 300


def import_vllm() -> Any:
    """The `vllm` module, or one clear line saying how to install it."""
    # vLLM logs to stdout by default; curate's stdout carries results (`run_id=` last).
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    try:
        import vllm
    except ImportError:
        raise RuntimeError(f"--backend vllm needs vLLM, which is not installed: {INSTALL}") from None
    return vllm


def make_llm(vllm: Any, seeded: bool = False, **options: Any) -> Any:
    """A `vllm.LLM`; on CPUs eager, where compiling the model takes minutes (4 on 2 cores for
    SmolLM2-135M) that a scoring pass or an agent run never earns back, and in this process: vLLM's
    engine and worker processes would each import vLLM and torch again (26 s of a 41 s start on 2
    cores) and take turns with this one for the cores (16 seeded requests: 15.9 s against 10.2 s,
    the same tokens). `VLLM_ENABLE_V1_MULTIPROCESSING=1` in the environment keeps vLLM's processes.

    `seeded`: requests will carry seeds. vLLM's CPU worker cannot take back the draw a seeded request
    makes on a partly prefilled prompt (it rewinds a GPU generator's offset; a CPU generator has none,
    and the engine dies: "CPU Generator does not use offset"), so on CPUs every prompt is prefilled
    whole: no chunked prefill (the step's token budget becomes the model's context).
    """
    from vllm.platforms import current_platform

    cpu = current_platform.is_cpu()
    if seeded and cpu:
        options.setdefault("enable_chunked_prefill", False)
    if cpu:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        _eager_helpers()
    _note_failures()
    return vllm.LLM(**options, enforce_eager=cpu)


def _eager_helpers() -> None:
    """`enforce_eager` leaves one helper compiled: the count of logprobs at or above a token's (its rank,
    whenever logprobs are asked for, as `curate score` does). On CPUs Dynamo traces it and gcc builds
    it at each engine start: 28 s of a 65 s `curate score --backend vllm --ifd` of two MINT runs with
    torch's compile cache cold, 8 s warm, for a comparison that eager torch does in milliseconds (at
    the cost of a boolean copy of the logprobs, a quarter of their size). So Dynamo is off on CPUs,
    in this process and in any vLLM starts (TORCHDYNAMO_DISABLE=1, unless the environment says)."""
    os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
    import torch._dynamo

    torch._dynamo.config.disable = os.environ["TORCHDYNAMO_DISABLE"] == "1"


def stop_llm(llm: Any) -> None:
    """Stop a `vllm.LLM`'s engine processes now: left to interpreter exit, their shutdown can abort
    the process (exit -6, "terminate called without an active exception") after its work is done."""
    llm.llm_engine.engine_core.shutdown()
    if os.environ.get("VLLM_LOGGING_CONFIG_PATH") == str(_LOGGING):
        del os.environ["VLLM_LOGGING_CONFIG_PATH"]
        _LOGGING.unlink(missing_ok=True)


# Where vLLM's processes note the exceptions they log (one line each), so that an engine that died is
# said with its cause: vLLM's client only learns that the engine is dead. Its engine processes are
# spawned (where there are any: on CPUs only with VLLM_ENABLE_V1_MULTIPROCESSING=1), so the note comes
# with the logging config they load: vLLM's own, plus `FailureNotes`, given by vLLM's documented
# VLLM_LOGGING_CONFIG_PATH (unless the user set one). An engine in this process raises its cause.
_FAILURES = Path(tempfile.gettempdir()) / f"curate-vllm-failures-{os.getpid()}.txt"
_LOGGING = _FAILURES.with_name(f"curate-vllm-logging-{os.getpid()}.json")


class FailureNotes(logging.Handler):
    """A log handler of vLLM's processes: each exception logged, one line appended to `filename`."""

    def __init__(self, filename: str) -> None:
        super().__init__(logging.ERROR)
        self.filename = filename

    def emit(self, record: logging.LogRecord) -> None:
        """Note the record's exception, if it has one."""
        if record.exc_info and (error := record.exc_info[1]) is not None:
            with open(self.filename, "a") as notes:
                notes.write(" ".join(f"{type(error).__name__}: {error}".split())[:_CAUSE_CHARS] + "\n")


def _note_failures() -> None:
    """Have vLLM's processes, spawned from here on, note the exceptions they log in `_FAILURES`."""
    _FAILURES.unlink(missing_ok=True)
    if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1") == "0":
        return  # no processes to spawn: the engine runs here and raises its own cause
    if os.environ.get("VLLM_LOGGING_CONFIG_PATH", str(_LOGGING)) != str(_LOGGING):
        return  # the user's own config: an engine that dies is said without its cause
    if os.environ.get("VLLM_CONFIGURE_LOGGING", "1") == "0":
        return
    from vllm.logger import DEFAULT_LOGGING_CONFIG

    config = copy.deepcopy(DEFAULT_LOGGING_CONFIG)
    config["handlers"]["curate_failures"] = {"class": f"{__name__}.FailureNotes", "filename": str(_FAILURES)}
    config["loggers"]["vllm"]["handlers"].append("curate_failures")
    _LOGGING.write_text(json.dumps(config))
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(_LOGGING)


def engine_failure(error: BaseException) -> str:
    """One line for an engine that stopped answering: the first exception its processes logged (the
    root cause; those after it report it again), else the error itself."""
    causes = _FAILURES.read_text().splitlines() if _FAILURES.is_file() else []
    _FAILURES.unlink(missing_ok=True)
    said = causes[0] if causes else " ".join(f"{type(error).__name__}: {error}".split())[:_CAUSE_CHARS]
    return f"vLLM's engine died: {said}; the runs finished before it are kept: run the same command again to resume"
