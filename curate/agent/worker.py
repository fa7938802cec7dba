"""The process side of the Python sandbox: the zygote that pre-imports the interpreter, and the
per-run worker processes forked from it (see `curate.agent.sandbox` for the design).

Every process here serves one connection to the parent with three requests:
    ("fork",) + a passed socket   fork; the child serves the passed socket with a copy of the state
    ("exec", code)                run one code step with smolagents' LocalPythonExecutor
    ("exit",)                     end the process
The zygote holds no executor: a fork of it starts a fresh run.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import math
import os
import resource
import signal
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle
from typing import Any

# smolagents' BASE_BUILTIN_MODULES (the same list in 1.13, which the release ran, and today):
# always authorized by LocalPythonExecutor, listed here so the zygote can pre-import them.
BASE_MODULES = ("collections", "datetime", "itertools", "math", "queue", "random", "re", "stat",
                "statistics", "time", "unicodedata")
VALUE_CHARS = 20_000  # smolagents' truncate_content limit for "Last output from code snippet"
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000
_channel: Connection | None = None  # this process's connection; tool calls travel over it


@dataclass(frozen=True)
class WorkerConfig:
    """What the zygote needs to set up every run."""

    seconds: float
    memory_mb: int
    output_chars: int
    imports: tuple[str, ...]
    tools: tuple[str, ...]
    workdir: str


class OutputLimitExceeded(BaseException):
    """Printing past the cap. A BaseException, like smolagents' FinalAnswerException, so that the
    sandboxed code's own `except Exception` cannot swallow it and keep printing."""


class ToolError(Exception):
    """A tool call that failed in the parent process."""


def zygote(conn: Connection, config: WorkerConfig) -> None:
    """Entry point of the zygote process: import, isolate, then fork runs on request."""
    global _channel
    try:
        # One BLAS thread: a forked child must not inherit a half-initialised thread pool.
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = "1"
        sys.dont_write_bytecode = True
        _preload(config)
        os.chdir(config.workdir)
        isolation = _isolate(config)
        gc.collect()
        gc.freeze()  # keep the pre-imported heap out of the collector: forks share its pages
    except Exception as error:  # noqa: BLE001 - reported to the parent as one line
        conn.send(("failed", f"{type(error).__name__}: {error}"))
        return
    _channel = conn
    conn.send(("ready", isolation))
    _serve(conn, None, config)


def _preload(config: WorkerConfig) -> None:
    """Import the interpreter and every authorized module once, here, so that runs fork warm."""
    import smolagents.local_python_executor as lpe

    # smolagents truncates printed output only after the step ends; a runaway print loop would
    # hold all of it in memory until the time limit. Cap it while printing instead.
    class CappedPrint(lpe.PrintContainer):
        def __iadd__(self, other):
            text = str(other)
            room = config.output_chars - len(self.value)
            self.value += text[: max(room, 0)]
            if len(text) > room:
                raise OutputLimitExceeded(f"printed output exceeded {config.output_chars} characters")
            return self

    lpe.PrintContainer = CappedPrint
    for name in (*BASE_MODULES, *config.imports):
        name = name.removesuffix(".*")
        if name != "*":
            try:
                importlib.import_module(name)
            except ImportError:
                pass  # LocalPythonExecutor names missing authorized modules itself


def _isolate(config: WorkerConfig) -> dict[str, str]:
    """Limits every run inherits: memory, file writes, CPU backstop, network. Says what holds."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails, not kills
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    base = _vm_size()
    limit = base + config.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGCHLD, _reap)
    libc = ctypes.CDLL(None, use_errno=True)
    subreaper = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER: orphaned runs come here
    network = "none (network namespace)" if _unshare_network(libc) else "interpreter import list only"
    return {
        "memory": f"RLIMIT_AS {limit // 2**20} MiB ({config.memory_mb} MiB over the interpreter)",
        "files": _restrict_files(config.workdir),
        "network": network,
        "reaper": "zygote" if subreaper else "init",
        "hash_seed": os.environ.get("PYTHONHASHSEED", "random"),
    }


def _vm_size() -> int:
    """This process's virtual memory size in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _unshare_network(libc: ctypes.CDLL) -> bool:
    """Move into an empty network namespace (root), or a user+network one (unprivileged)."""
    return any(libc.unshare(flags) == 0 for flags in (_CLONE_NEWNET, _CLONE_NEWUSER | _CLONE_NEWNET))


def _restrict_files(workdir: str) -> str:
    """Landlock: no file creation, change or removal outside the work folder (where supported)."""
    try:
        import landlock
    except ImportError:
        return "RLIMIT_FSIZE 0 only (the landlock package is not installed)"
    try:
        writes = landlock.FSAccess.all() & ~(
            landlock.FSAccess.EXECUTE | landlock.FSAccess.READ_FILE | landlock.FSAccess.READ_DIR
        )
        ruleset = landlock.Ruleset(restrict_rules=writes)
        ruleset.allow(workdir)
        ruleset.apply()
    except (OSError, landlock.LandlockError) as error:
        return f"RLIMIT_FSIZE 0 only (Landlock unavailable: {str(error).splitlines()[0]})"
    return f"RLIMIT_FSIZE 0 and Landlock: writes only under {workdir}"


def _reap(_signum: int, _frame: Any) -> None:
    """Collect every finished child (killed steps, retired runs re-parented here)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _serve(conn: Connection, executor: Any, config: WorkerConfig) -> None:
    """Answer the parent's requests until told to exit or the parent goes away."""
    global _channel
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        if request[0] == "fork":
            fd = recv_handle(conn)
            pid = os.fork()
            if pid == 0:
                conn.close()
                conn = _channel = Connection(fd)
                if executor is None:
                    executor = _new_executor(config)
            else:
                os.close(fd)
                conn.send(("forked", pid))
        elif request[0] == "exec":
            conn.send(("done", execute(executor, request[1], config)))
        else:
            os._exit(0)


def _new_executor(config: WorkerConfig) -> Any:
    """A fresh LocalPythonExecutor with final_answer and the parent's tools."""
    from smolagents.local_python_executor import LocalPythonExecutor

    executor = LocalPythonExecutor(
        list(config.imports), max_print_outputs_length=config.output_chars, timeout_seconds=None
    )
    # Sorted: its error message lists them, and a set's order would change between processes.
    executor.authorized_imports = sorted(executor.authorized_imports)
    tools = {name: _remote_tool(name) for name in config.tools}
    executor.send_tools({"final_answer": lambda answer: answer, **tools})
    return executor


def _remote_tool(name: str):
    """A function that runs tool `name` in the parent process and returns its text."""

    def call(*args: Any, **kwargs: Any) -> str:
        _channel.send(("tool", name, args, kwargs))
        ok, text = _channel.recv()
        if not ok:
            raise ToolError(text)
        return text

    call.__name__ = name
    return call


def execute(executor: Any, code: str, config: WorkerConfig):
    """Run one step; any failure becomes the error of the StepResult."""
    # A backstop should the parent be gone: the step's CPU time is bounded even then (SIGXCPU).
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = math.ceil(used.ru_utime + used.ru_stime + config.seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))
    try:
        return _run_step(executor, code, config)
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _run_step(executor: Any, code: str, config: WorkerConfig):
    from .sandbox import StepResult

    try:
        out = executor(code)
        value, value_repr = _text(out.output), _text(out.output, repr)
        return StepResult.success(
            logs=out.logs, value=value, value_repr=value_repr,
            final_answer=value if out.is_final_answer else None,
        )
    except OutputLimitExceeded as error:
        message = f"Code execution failed: {error}"
    except Exception as error:  # noqa: BLE001 - every code error is an observation
        message = str(error)
    return StepResult.failure(message, logs=str(executor.state.get("_print_outputs", "")))


def _text(value: Any, render=str) -> str:
    """str/repr of a step's value, cut like smolagents' truncate_content."""
    text = render(value)
    if len(text) <= VALUE_CHARS:
        return text
    half = VALUE_CHARS // 2
    return f"{text[:half]}\n..._This content has been truncated to stay below {VALUE_CHARS} characters_...\n{text[-half:]}"


if __name__ == "__main__":
    _conn = Connection(int(sys.argv[1]))
    zygote(_conn, _conn.recv())
