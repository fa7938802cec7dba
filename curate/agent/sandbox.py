"""The `python` tool: code actions run by smolagents' LocalPythonExecutor (the interpreter the
teacher ran) inside worker processes that can be killed, with per-run state.

    with PythonSandbox(Limits(seconds=10), imports=DEFAULT_IMPORTS, tools={"web_search": search}) as sb:
        a, b = sb.open(), sb.open()                       # two runs, fresh state each
        sb.run([(a, "x = 2"), (b, "x = 3")])              # one batch: steps of many runs, in parallel
        [r] = sb.run([(a, "print(x * 10)")])              # r.observation: the release's text
        c = sb.fork(a)                                    # an independent copy of a's state
        sb.release(c)

Design. A zygote process (a fresh interpreter, so it never inherits the caller's torch or CUDA)
imports smolagents and every authorized module once, applies the limits below, and then forks one
process per run. A run's state (smolagents' variable dict) lives in its process and nowhere else.
Each step runs in a fresh fork of the run's process: if the step finishes, normally or with an
error, the fork becomes the run's process; if it runs past the time limit or dies (a C-level loop,
a crash), it is killed and the run keeps the state it had before the step, so no step can take down
another run or its own earlier state, and nothing needs re-running. `fork(handle)` is the same
fork without a step: copy-on-write pages make it cheap and fully isolated (self-consistent action
generation runs each candidate in its own fork). Forking per step costs a few milliseconds.

Limits: wall clock per step (the parent kills the step's process; a CPU-time rlimit backs it up),
memory (RLIMIT_AS: `memory_mb` over the pre-imported interpreter, so a large allocation raises
MemoryError inside the code), printed output (printing past `output_chars` is an error), imports
(smolagents' allow-list; it also refuses `open`, `eval`, dunder access and dangerous modules), no
file writes (RLIMIT_FSIZE 0, and Landlock allows creating or changing files only in the sandbox's
temporary work folder), no network (an empty network namespace where the kernel allows one; the
import list keeps `socket` out in any case). `isolation` says which of these hold on this machine.
Tools such as `web_search` run in the parent process: the sandboxed code calls them over its pipe,
so the workers need neither the network nor the search index. Workers run with PYTHONHASHSEED=0,
so set order and error texts are the same on every run. Linux only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing import connection
from multiprocessing.reduction import send_handle

from .worker import BASE_MODULES, WorkerConfig, zygote

# The release's additional imports (numpy, sympy, numpy.linalg, with submodules), in the syntax of
# smolagents >= 1.14; smolagents' safe standard modules (math, re, ...) are always added to these.
DEFAULT_IMPORTS = ("numpy.*", "sympy.*")
RETRY = ("Now let's retry: take care not to repeat previous errors! If you have retried several "
         "times, try a completely different approach.\n")
_START_SECONDS = 120  # the zygote imports smolagents, numpy and sympy on a loaded machine


@dataclass(frozen=True)
class Limits:
    """Per-step limits of the sandbox."""

    seconds: float = 10.0  # wall clock of one step
    memory_mb: int = 1024  # address space a run may use on top of the pre-imported interpreter
    output_chars: int = 50_000  # printed characters per step (smolagents' default log cap)


@dataclass(frozen=True)
class StepResult:
    """What one code step produced, and the observation the agent sees."""

    observation: str  # the tool-response text after "Observation:\n" (see tool_responses)
    error: str | None  # None when the step ran to the end (or to final_answer)
    final_answer: str | None  # str(x) of final_answer(x)
    logs: str  # printed output
    value: str | None  # str() of the last statement's value ("Last output from code snippet")
    value_repr: str | None  # repr() of it (how IPython would display it)

    @property
    def is_final(self) -> bool:
        """The step called final_answer: the run ends here."""
        return self.final_answer is not None

    @classmethod
    def success(cls, logs: str, value: str, value_repr: str, final_answer: str | None = None) -> StepResult:
        """A step that ran: the release's `Execution logs` / `Last output` observation."""
        observation = f"Execution logs:\n{logs}Last output from code snippet:\n{value}"
        return cls(observation, None, final_answer, logs, value, value_repr)

    @classmethod
    def failure(cls, error: str, logs: str = "") -> StepResult:
        """A step that failed: what it printed, then the release's `Error:` text."""
        printed = f"Execution logs:\n{logs}\n" if logs else ""
        return cls(f"{printed}Error:\n{error}\n{RETRY}", error, None, logs, None, None)

    def tool_responses(self, call_id: str) -> list[str]:
        """The release's tool-response messages for this step (an error adds its own message)."""
        if self.error is None:
            return [f"Call id: {call_id}\nObservation:\n{self.observation}"]
        printed = [f"Call id: {call_id}\nObservation:\nExecution logs:\n{self.logs}"] if self.logs else []
        return [*printed, f"Call id: {call_id}\nError:\n{self.error}\n{RETRY}"]


@dataclass
class _Process:
    pid: int
    conn: connection.Connection


class PythonSandbox:
    """Runs code steps of many agent runs in killable worker processes; see the module docstring."""

    def __init__(
        self,
        limits: Limits = Limits(),
        imports: Sequence[str] = DEFAULT_IMPORTS,
        tools: Mapping[str, Callable[..., str]] | None = None,
        workers: int | None = None,
    ):
        self.limits = limits
        self.tools = dict(tools or {})
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._imports = tuple(imports)
        self._runs: dict[int, _Process] = {}
        self._next = 0
        self.workdir = tempfile.mkdtemp(prefix="curate-sandbox-")
        config = WorkerConfig(limits.seconds, limits.memory_mb, limits.output_chars,
                              tuple(imports), tuple(self.tools), self.workdir)
        self._zygote, self.isolation = self._start(config)

    @property
    def authorized_imports(self) -> list[str]:
        """The effective import allow-list: smolagents' safe standard modules plus `imports`."""
        return sorted(set(BASE_MODULES) | set(self._imports))

    def _start(self, config: WorkerConfig) -> tuple[_Process, dict[str, str]]:
        # A fresh interpreter (not a fork of the caller, which may hold torch, CUDA or threads), run
        # as a module so that the caller's own script is never imported again.
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "curate.agent.worker", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )
        theirs.close()
        conn = connection.Connection(ours.detach())
        conn.send(config)
        if not conn.poll(_START_SECONDS):
            self._process.kill()
            raise RuntimeError(f"the sandbox did not start within {_START_SECONDS} s")
        try:
            status, detail = conn.recv()
        except EOFError:
            raise RuntimeError(f"the sandbox process exited at start (code {self._process.wait()})") from None
        if status != "ready":
            raise RuntimeError(f"the sandbox could not start: {detail}")
        return _Process(self._process.pid, conn), detail

    def __enter__(self) -> PythonSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> int:
        """A new run with empty state; returns its handle."""
        return self._add(self._fork(self._zygote))

    def fork(self, handle: int) -> int:
        """A new run whose state is an independent copy of `handle`'s."""
        return self._add(self._fork(self._run(handle)))

    def release(self, handle: int) -> None:
        """End a run and free its process."""
        self._retire(self._run(handle))
        del self._runs[handle]

    def pid(self, handle: int) -> int:
        """The process that holds a run's state (its steps run in forks of it)."""
        return self._run(handle).pid

    def run(self, steps: Sequence[tuple[int, str]]) -> list[StepResult]:
        """Run one code step for each (handle, code), at most `workers` at once; results in order."""
        handles = [h for h, _ in steps]
        if len(set(handles)) != len(handles):
            raise ValueError("a batch may hold one step per run")
        for h in handles:
            self._run(h)
        results: list[StepResult | None] = [None] * len(steps)
        waiting = deque(range(len(steps)))
        active: dict[connection.Connection, tuple[int, _Process, float]] = {}
        while waiting or active:
            while waiting and len(active) < self.workers:
                i = waiting.popleft()
                handle, code = steps[i]
                step = self._fork(self._runs[handle])
                step.conn.send(("exec", code))
                active[step.conn] = (i, step, time.monotonic() + self.limits.seconds)
            deadline = min(d for _, _, d in active.values())
            for conn in connection.wait(list(active), timeout=max(0.0, deadline - time.monotonic())):
                i, step, _ = active[conn]
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    del active[conn]
                    results[i] = self._lost(step, "its process ended abnormally (a crash or the CPU-time limit)")
                    continue
                if message[0] == "tool":
                    self._call_tool(conn, *message[1:])
                    continue
                del active[conn]
                results[i] = message[1]
                handle = steps[i][0]
                self._retire(self._runs[handle])
                self._runs[handle] = step
            now = time.monotonic()
            for conn, (i, step, deadline) in list(active.items()):
                if now >= deadline:
                    del active[conn]
                    results[i] = self._lost(step, f"the step exceeded the time limit of {self.limits.seconds:g} s")
        return results

    def close(self) -> None:
        """Stop every run and the zygote; remove the work folder."""
        for run in self._runs.values():
            self._kill(run)
        self._runs.clear()
        if self._zygote is not None:
            self._kill(self._zygote)
            self._process.wait()
            self._zygote = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _run(self, handle: int) -> _Process:
        if handle not in self._runs:
            raise ValueError(f"unknown or released run handle {handle!r}")
        return self._runs[handle]

    def _add(self, process: _Process) -> int:
        self._next += 1
        self._runs[self._next] = process
        return self._next

    def _fork(self, parent: _Process) -> _Process:
        """Ask a process to fork; the child answers on a new socket pair."""
        if self._zygote is None:
            raise RuntimeError("the sandbox is closed")
        ours, theirs = socket.socketpair()
        parent.conn.send(("fork",))
        send_handle(parent.conn, theirs.fileno(), parent.pid)
        theirs.close()
        _, pid = parent.conn.recv()
        return _Process(pid, connection.Connection(ours.detach()))

    def _call_tool(self, conn: connection.Connection, name: str, args: tuple, kwargs: dict) -> None:
        """Run a tool the sandboxed code called; its error goes back as the code's exception."""
        try:
            reply = (True, str(self.tools[name](*args, **kwargs)))
        except Exception as error:  # noqa: BLE001 - the code sees the failure, the batch goes on
            reply = (False, f"{name} failed: {type(error).__name__}: {error}")
        try:
            conn.send(reply)
        except OSError:
            pass  # the step died meanwhile; the wait loop sees its end of file next

    def _lost(self, step: _Process, why: str) -> StepResult:
        self._kill(step)
        return StepResult.failure(
            f"Code execution failed: {why}; the step was stopped and its changes to the variables discarded"
        )

    def _retire(self, process: _Process) -> None:
        try:
            process.conn.send(("exit",))
        except OSError:
            pass
        process.conn.close()

    @staticmethod
    def _kill(process: _Process) -> None:
        try:
            os.kill(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.conn.close()

