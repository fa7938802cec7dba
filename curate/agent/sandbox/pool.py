"""The parent side of the python tool: the jail's zygote, the runs' processes in it, and the steps
they run, each step's reply read as untrusted data (the design is in the package docstring)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing import connection
from typing import Any

from .channel import Channel, ProtocolError
from .jail import (
    PACKAGE,
    JailUnavailable,
    boot,
    bwrap_command,
    bwrap_version,
    environment,
    import_paths,
    interpreter_folders,
    jail_uid,
)
from .results import ERROR_CHARS, VALUE_CHARS, StepResult
from .scrub import Secrets
from .worker import BASE_MODULES

# The release's additional imports (numpy, sympy, numpy.linalg, with submodules), in the syntax of
# smolagents >= 1.14; smolagents' safe standard modules (math, re, ...) are always added to these.
DEFAULT_IMPORTS = ("numpy.*", "sympy.*")
_START_SECONDS = 120  # the zygote imports smolagents, numpy and sympy on a loaded machine
_REPLY_SECONDS = 30  # a fork or a sweep takes milliseconds; a process this slow is broken
# Killed processes count against the process limit until they have exited: a fork refused with no
# step running is tried again this long (a fork bomb's processes take a moment to go).
_PATIENCE_SECONDS = 5.0
_CUT_NOTE = 100  # the characters a cut text gains ("..._This content has been truncated ...")
_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Limits:
    """Per-step limits of the sandbox."""

    seconds: float = 10.0  # wall clock of one step
    memory_mb: int = 1024  # address space a process may use on top of the pre-imported interpreter
    output_chars: int = 50_000  # printed characters per step (smolagents' default log cap)
    processes: int = 256  # processes and threads in the jail, runs and steps included


@dataclass
class _Process:
    pid: int  # in the jail's PID namespace (the host's with the unsafe local executor)
    channel: Channel


class _Broken(Exception):
    """A process of the jail did not answer a request as it must."""


class _Refused(_Broken):
    """A process of the jail could not fork: the jail's process limit is reached (a step may be
    forking as fast as it can)."""


class PythonSandbox:
    """Runs code steps of many agent runs in killable processes inside a jail; see the package docstring."""

    def __init__(
        self,
        limits: Limits = Limits(),
        imports: Sequence[str] = DEFAULT_IMPORTS,
        tools: Mapping[str, Callable[..., str]] | None = None,
        workers: int | None = None,
        unsafe: bool = False,
        secrets: Secrets | None = None,
    ):
        self.limits = limits
        self.tools = dict(tools or {})
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.jailed = not unsafe
        self.secrets = Secrets() if secrets is None else secrets
        self.redacted = 0  # secret values replaced in results so far
        self._imports = tuple(imports)
        self._runs: dict[int, _Process | None] = {}  # None: the run's process was lost; it starts again empty
        self._next = 0
        self._reply_bytes = 6 * (limits.output_chars + 2 * VALUE_CHARS + ERROR_CHARS) + 65_536
        self._zygote: _Process | None = None
        self.workdir = tempfile.mkdtemp(prefix="curate-sandbox-")
        try:
            self._zygote, facts = self._start()
        except BaseException:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        self.isolation = self._isolation(facts)

    @property
    def authorized_imports(self) -> list[str]:
        """The effective import allow-list: smolagents' safe standard modules plus `imports`."""
        return sorted(set(BASE_MODULES) | set(self._imports))

    def _start(self) -> tuple[_Process, dict[str, str]]:
        # A fresh interpreter (never a fork of curate, which may hold torch, CUDA, threads or secrets).
        modules = {name.split(".")[0] for name in (*self._imports, "smolagents") if name != "*"}
        paths = import_paths(sorted(modules))
        uid = jail_uid() if self.jailed else None
        if self.jailed:
            if uid is not None:
                os.chown(self.workdir, uid, uid)
            argv = bwrap_command(self.workdir, interpreter_folders(paths), uid)
        else:
            argv = [sys.executable, *boot(str(PACKAGE.parent))]
        ours, theirs = socket.socketpair()
        with tempfile.TemporaryFile() as log:
            self._process = subprocess.Popen(
                [*argv, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                env=environment(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
            theirs.close()
            channel = Channel(ours, self._reply_bytes)
            config = {
                "seconds": self.limits.seconds,
                "memory_mb": self.limits.memory_mb,
                "output_chars": self.limits.output_chars,
                "imports": list(self._imports),
                "tools": sorted(self.tools),
                "uid": uid,
                "paths": paths,
                "processes": self.limits.processes if self.jailed else None,
            }
            try:
                channel.send(config)
                message = channel.recv(_START_SECONDS)
            except TimeoutError:
                self._process.kill()
                raise RuntimeError(f"the sandbox did not start within {_START_SECONDS} s") from None
            except (EOFError, OSError, ProtocolError):
                code = self._process.wait()
                log.seek(0)
                said = (log.read().decode(errors="replace").strip().splitlines() or ["(nothing on stderr)"])[-1]
                if self.jailed and said.startswith("bwrap:"):
                    raise JailUnavailable(
                        f"bubblewrap cannot make one on this machine ({said}): allow "
                        "unprivileged user namespaces, or run curate as root"
                    ) from None
                raise RuntimeError(f"the sandbox process exited at start (code {code}): {said}") from None
        if "failed" in message:
            self._process.kill()
            raise RuntimeError(f"the sandbox could not start: {message['failed']}")
        return _Process(self._process.pid, channel), dict(message["ready"])

    def _isolation(self, facts: dict[str, str]) -> dict[str, str]:
        secrets = f"{len(self.secrets)} secret-looking values of curate's environment replaced in every result"
        if not self.jailed:
            return {
                "jail": "none (--unsafe-local-executor): model code runs as you, with your files, "
                "environment variables and network",
                "files": "yours",
                "network": "the host's",
                "processes": facts["processes"],
                "memory": facts["memory"],
                "survivors": "not tracked",
                "hash_seed": "0",
                "secrets": secrets,
            }
        return {
            "jail": f"{bwrap_version()}: own mount, PID, network, IPC and UTS namespaces; dies with curate",
            "files": "read-only: the interpreter and its libraries; writable: /sandbox only, files of 0 bytes",
            "environment": "empty: " + ", ".join(environment()),
            "network": "none (network namespace)",
            "processes": facts["processes"],
            "memory": facts["memory"],
            "survivors": "none: a step's processes end with it",
            "hash_seed": "0",
            "secrets": secrets,
        }

    def describe(self) -> str:
        """The isolation in one line, for a command's summary."""
        if not self.jailed:
            return "python tool: NO JAIL (--unsafe-local-executor)"
        return (
            f"python tool: bubblewrap jail, no network, no secrets, {self.limits.processes} processes, "
            f"{self.limits.memory_mb} MiB each"
        )

    def __enter__(self) -> PythonSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> int:
        """A new run with empty state; returns its handle."""
        return self._add(self._fork_zygote())

    def fork(self, handle: int) -> int:
        """A new run whose state is an independent copy of `handle`'s."""
        run = self._run(handle)
        try:
            return self._add(self._fork(run)) if run is not None else self.open()
        except _Broken:
            return self.open()  # the run's state is gone: the copy starts empty, as the run will

    def release(self, handle: int) -> None:
        """End a run and free its process."""
        if (run := self._run(handle)) is not None:
            self._retire(run)
        del self._runs[handle]

    def run(self, steps: Sequence[tuple[int, str]]) -> list[StepResult]:
        """Run one code step for each (handle, code), at most `workers` at once; results in order."""
        handles = [h for h, _ in steps]
        if len(set(handles)) != len(handles):
            raise ValueError("a batch may hold one step per run")
        for h in handles:
            self._run(h)
        results: list[StepResult | None] = [None] * len(steps)
        waiting = deque(range(len(steps)))
        deferred: list[int] = []  # steps refused a process while others ran: tried again when one ends
        active: dict[Channel, tuple[int, _Process, float]] = {}
        while waiting or active:
            while waiting and len(active) < self.workers:
                i = waiting.popleft()
                handle, code = steps[i]
                try:
                    step = self._start_step(handle, code, patience=0.0 if active else _PATIENCE_SECONDS)
                except _Refused as why:
                    if active:
                        deferred.append(i)
                    else:
                        results[i] = self._lost(
                            f"{why}; the jail's limit of {self.limits.processes} processes is reached"
                        )
                    continue
                except (_Broken, OSError) as why:
                    results[i] = self._restart(handle, str(why))
                    continue
                active[step.channel] = (i, step, time.monotonic() + self.limits.seconds)
            if not active:
                continue
            ended: list[_Process] = []
            deadline = min(d for _, _, d in active.values())
            for channel in _ready(list(active), max(0.0, deadline - time.monotonic())):
                i, step, _ = active[channel]
                result, finished = self._read(step)
                if result is None:
                    continue
                del active[channel]
                results[i] = self._scrubbed(result)
                handle = steps[i][0]
                if finished:  # the step's process, with the state it left, is now the run's
                    if (before := self._runs[handle]) is not None:
                        ended.append(before)
                    self._runs[handle] = step
                else:
                    ended.append(step)
            now = time.monotonic()
            for channel, (i, step, deadline) in list(active.items()):
                if now >= deadline:
                    del active[channel]
                    results[i] = self._lost(f"the step exceeded the time limit of {self.limits.seconds:g} s")
                    ended.append(step)
            if ended:
                self._end(ended, [step for _, step, _ in active.values()])
                waiting.extend(deferred)
                deferred.clear()
        return results  # type: ignore[return-value]  # every slot was filled above

    def close(self) -> None:
        """Stop every run and the jail; remove the work folder."""
        if self._zygote is None:
            return
        if not self.jailed:
            for run in self._runs.values():
                if run is not None:
                    self._kill(run)
        for run in self._runs.values():
            if run is not None:
                run.channel.close()
        self._runs.clear()
        self._zygote.channel.close()  # the zygote exits at end of file; in a jail, every process with it
        self._zygote = None
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _run(self, handle: int) -> _Process | None:
        if handle not in self._runs:
            raise ValueError(f"unknown or released run handle {handle!r}")
        return self._runs[handle]

    def _add(self, process: _Process) -> int:
        self._next += 1
        self._runs[self._next] = process
        return self._next

    @property
    def _live_zygote(self) -> _Process:
        """The process every run is forked from; a closed sandbox has none."""
        if self._zygote is None:
            raise RuntimeError("the sandbox is closed")
        return self._zygote

    def _fork_zygote(self) -> _Process:
        try:
            return self._fork(self._live_zygote, _PATIENCE_SECONDS)
        except _Refused as why:
            raise RuntimeError(
                f"the sandbox could not start a run: {why}, the jail's limit of "
                f"{self.limits.processes} processes; run fewer at once (--slots)"
            ) from None
        except _Broken as why:
            raise RuntimeError(f"the sandbox's jail stopped answering ({why}); run the command again") from None

    def _fork(self, parent: _Process, patience: float = 0.0) -> _Process:
        """Ask a process to fork; the child answers on a new socket pair. A refusal is asked again
        for `patience` seconds."""
        deadline = time.monotonic() + patience
        while True:
            try:
                return self._fork_once(parent)
            except _Refused:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _fork_once(self, parent: _Process) -> _Process:
        if self._zygote is None:
            raise RuntimeError("the sandbox is closed")
        ours, theirs = socket.socketpair()
        try:
            parent.channel.send({"op": "fork"}, fd=theirs.fileno())
            reply = parent.channel.recv(_REPLY_SECONDS)
        except (EOFError, TimeoutError, OSError, ProtocolError) as error:
            ours.close()
            raise _Broken(f"its process did not fork: {error}") from None
        finally:
            theirs.close()
        if "refused" in reply:
            ours.close()
            raise _Refused(f"no process could start ({str(reply['refused'])[:200]})")
        pid = reply.get("pid")
        if type(pid) is not int or pid < 1:
            ours.close()
            raise _Broken(f"its process answered a fork with {pid!r}")
        return _Process(pid, Channel(ours, self._reply_bytes))

    def _start_step(self, handle: int, code: str, patience: float) -> _Process:
        """Fork the run's process for a step and send it the code (a run whose process was lost
        first starts again empty)."""
        run = self._runs[handle]
        if run is None:
            run = self._runs[handle] = self._fork(self._live_zygote, patience)
        step = self._fork(run, patience)
        step.channel.send({"op": "exec", "code": code})
        return step

    def _restart(self, handle: int, why: str) -> StepResult:
        """A run whose process is broken starts again with empty state (now, or when the jail has room
        for a process); the step says so."""
        if (run := self._runs[handle]) is not None:
            self._retire(run)
        try:
            self._runs[handle] = self._fork(self._live_zygote, _PATIENCE_SECONDS)
        except _Refused:
            self._runs[handle] = None
        except _Broken as error:
            raise RuntimeError(f"the sandbox's jail stopped answering ({error}); run the command again") from None
        return self._lost(f"the run's process broke ({why}); its variables are lost")

    def _read(self, step: _Process) -> tuple[StepResult | None, bool]:
        """What a step sent: (its result, True) when it finished, (an error, False) when it must be
        stopped, (None, False) when it goes on (a tool call answered, a message not yet whole)."""
        try:
            if not step.channel.fill():
                return self._lost("its process ended abnormally (a crash or the CPU-time limit)"), False
            while (message := step.channel.pending()) is not None:
                if "tool" in message:
                    self._call_tool(step.channel, message)
                elif "done" in message:
                    return self._result(message["done"]), True
                else:
                    raise ProtocolError(f"a message that is not a tool call or a result ({sorted(message)[:3]})")
        except ProtocolError as error:
            return self._lost(f"its process sent {error}"), False
        except OSError as error:
            return self._lost(f"its channel failed ({error.strerror or error})"), False
        return None, False

    def _result(self, done: Any) -> StepResult:
        """A step's reply, checked for shape and size, as a StepResult."""
        if not isinstance(done, dict) or set(done) != {"logs", "value", "value_repr", "final", "error"}:
            raise ProtocolError("a result of the wrong shape")
        logs = _text(done["logs"], self.limits.output_chars)
        if done["error"] is not None:
            return StepResult.failure(_text(done["error"], ERROR_CHARS + _CUT_NOTE), logs)
        value = _text(done["value"], VALUE_CHARS + _CUT_NOTE)
        if type(done["final"]) is not bool:
            raise ProtocolError("a result of the wrong shape")
        return StepResult.success(
            logs,
            value,
            _text(done["value_repr"], VALUE_CHARS + _CUT_NOTE),
            final_answer=value if done["final"] else None,
        )

    def _scrubbed(self, result: StepResult) -> StepResult:
        result = self.secrets.scrub_result(result)
        self.redacted += result.redacted
        return result

    def _call_tool(self, channel: Channel, message: dict[str, Any]) -> None:
        """Run a tool the sandboxed code called; its error goes back as the code's exception."""
        name, args, kwargs = message.get("tool"), message.get("args"), message.get("kwargs")
        if not isinstance(args, list) or not isinstance(kwargs, dict) or name not in self.tools:
            raise ProtocolError("a malformed tool call")
        if not all(isinstance(a, _PLAIN) for a in (*args, *kwargs.values())):
            reply = {"ok": False, "text": f"{name} failed: it takes strings and numbers only"}
        else:
            try:
                reply = {"ok": True, "text": str(self.tools[name](*args, **kwargs))}
            except Exception as error:  # noqa: BLE001 - the code sees the failure, the batch goes on
                reply = {"ok": False, "text": f"{name} failed: {type(error).__name__}: {error}"}
        channel.send(reply)

    def _lost(self, why: str) -> StepResult:
        return StepResult.failure(
            f"Code execution failed: {why}; the step was stopped and its changes to the variables discarded"
        )

    def _end(self, ended: list[_Process], running: list[_Process]) -> None:
        """Close finished steps and retired runs; kill every process of the jail they leave behind."""
        for process in ended:
            self._retire(process)
        if not self.jailed:
            for process in ended:
                self._kill(process)
            return
        keep = [p.pid for p in (*self._runs.values(), *running) if p is not None]
        try:
            self._live_zygote.channel.send({"op": "sweep", "keep": keep, "steps": [p.pid for p in running]})
            self._live_zygote.channel.recv(_REPLY_SECONDS)
        except (EOFError, TimeoutError, OSError, ProtocolError) as error:
            raise RuntimeError(f"the sandbox's jail stopped answering ({error}); run the command again") from None

    def _retire(self, process: _Process) -> None:
        try:
            process.channel.send({"op": "exit"})
        except OSError:
            pass
        process.channel.close()

    @staticmethod
    def _kill(process: _Process) -> None:
        """End a process by its host pid (only without a jail: a jail's pids are not the host's)."""
        try:
            os.kill(process.pid, 9)
        except ProcessLookupError:
            pass


def _ready(channels: list[Channel], timeout: float) -> list[Channel]:
    """Those of `channels` with a message or end of file waiting, within `timeout` seconds."""
    # wait() takes any objects with fileno() and returns those same objects; typeshed names only its own kinds
    return connection.wait(channels, timeout)  # type: ignore[arg-type, return-value]


def _text(value: Any, limit: int) -> str:
    """A string field of a step's reply: bounded, and valid Unicode (lone surrogates replaced)."""
    if not isinstance(value, str) or len(value) > limit:
        raise ProtocolError("a result of the wrong shape or size")
    return _SURROGATE.sub("\ufffd", value)
