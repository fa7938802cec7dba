"""The jailed side of the python tool: the zygote that pre-imports the interpreter, and the per-run
processes forked from it (the design is in `curate.agent.sandbox`'s docstring).

This file runs in the jail as `sandbox.worker`, outside the curate package: it imports the standard
library, its sibling modules and smolagents only. Every process serves one channel (JSON messages,
`channel.py`). Requests from the parent:

    {"op": "fork"} + a passed socket   fork; the child starts a new session and serves the socket
                                       (a fork of the zygote starts a fresh run)
    {"op": "exec", "code": ...}        run one code step with smolagents' LocalPythonExecutor
    {"op": "sweep", "keep", "steps"}   zygote only: kill every process of the jail but `keep` and
                                       the sessions of the running `steps`
    {"op": "exit"}                     end the process

Replies are plain data that the parent checks: `{"ready": facts}` or `{"failed": why}` at start,
`{"pid": n}` after a fork, `{"tool": name, "args": [...]}` for a tool call (answered with
`{"ok": bool, "text": str}`), `{"done": {...}}` after a step, `{"swept": n}`.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import math
import os
import resource
import signal
import socket
import sys
from typing import Any

from .channel import Channel
from .results import ERROR_CHARS, VALUE_CHARS

# smolagents' BASE_BUILTIN_MODULES (the same list in 1.13, which the release ran, and today):
# always authorized by LocalPythonExecutor, listed here so the zygote can pre-import them.
BASE_MODULES = (
    "collections",
    "datetime",
    "itertools",
    "math",
    "queue",
    "random",
    "re",
    "stat",
    "statistics",
    "time",
    "unicodedata",
)
REQUEST_BYTES = 1 << 24  # the parent's requests (code, tool answers) are trusted and may be long
_PR_SET_DUMPABLE = 4
_channel: Channel | None = None  # this process's channel; tool calls travel over it


class OutputLimitExceeded(BaseException):
    """Printing past the cap. A BaseException, like smolagents' FinalAnswerException, so that the
    sandboxed code's own `except Exception` cannot swallow it and keep printing."""


class ToolError(Exception):
    """A tool call that failed in the parent process."""


def main() -> None:
    """Entry point of the zygote: drop privileges, import, limit, then serve the parent."""
    global _channel
    channel = _channel = Channel(socket.socket(fileno=int(sys.argv[1])), REQUEST_BYTES, accept_fds=True)
    config = channel.recv()
    try:
        facts = _drop_privileges(config)
        sys.dont_write_bytecode = True
        sys.path.extend(p for p in config["paths"] if p not in sys.path)
        _preload(config)
        facts |= _limit(config)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, _reap)
        gc.collect()
        gc.freeze()  # keep the pre-imported heap out of the collector: forks share its pages
    except Exception as error:  # noqa: BLE001 - reported to the parent as one line
        channel.send({"failed": f"{type(error).__name__}: {error}"})
        return
    channel.send({"ready": facts})
    _serve(channel, None, config)


def _drop_privileges(config: dict[str, Any]) -> dict[str, str]:
    """Become the jail's own uid (when started as root), then bound the number of processes."""
    uid = config["uid"]
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    # Not dumpable: no process of the jail can trace another or read its memory; forks inherit it.
    ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    limit = config["processes"]
    if limit is None:  # no jail: the limit would count every process of the user's, not the worker's
        return {"processes": "unlimited"}
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
    return {"processes": f"at most {limit} processes and threads (RLIMIT_NPROC, uid {os.getuid()})"}


def _preload(config: dict[str, Any]) -> None:
    """Import the interpreter and every authorized module once, here, so that runs fork warm."""
    import smolagents.local_python_executor as lpe

    # smolagents truncates printed output only after the step ends; a runaway print loop would
    # hold all of it in memory until the time limit. Cap it while printing instead.
    class CappedPrint(lpe.PrintContainer):
        def __iadd__(self, other):
            text = str(other)
            room = config["output_chars"] - len(self.value)
            self.value += text[: max(room, 0)]
            if len(text) > room:
                raise OutputLimitExceeded(f"printed output exceeded {config['output_chars']} characters")
            return self

    lpe.PrintContainer = CappedPrint
    for name in (*BASE_MODULES, *config["imports"]):
        name = name.removesuffix(".*")
        if name != "*":
            try:
                importlib.import_module(name)
            except ImportError:
                pass  # LocalPythonExecutor names missing authorized modules itself


def _limit(config: dict[str, Any]) -> dict[str, str]:
    """Limits every run inherits: memory, file sizes, no core files. Says what holds."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails, not kills
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    base = _vm_size()
    limit = base + config["memory_mb"] * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return {"memory": f"RLIMIT_AS {limit // 2**20} MiB per process ({config['memory_mb']} MiB over the interpreter)"}


def _vm_size() -> int:
    """This process's virtual memory size in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _reap(_signum: int, _frame: Any) -> None:
    """Collect every finished child (killed steps, retired runs and orphans re-parented here)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _serve(channel: Channel, executor: Any, config: dict[str, Any]) -> None:
    """Answer the parent's requests until told to exit or the parent goes away."""
    global _channel
    while True:
        try:
            request = channel.recv()
        except (EOFError, OSError):
            os._exit(0)
        op = request.get("op")
        if op == "fork":
            fd = channel.fds.pop(0)
            try:
                pid = os.fork()
            except OSError as error:  # the process limit, reached by a step that forks without end
                os.close(fd)
                channel.send({"refused": error.strerror or str(error)})
                continue
            if pid == 0:
                os.setsid()  # a session of its own: what it starts is known by its session id
                channel.sock.close()
                channel = _channel = Channel(socket.socket(fileno=fd), REQUEST_BYTES, accept_fds=True)
                if executor is None:
                    executor = _new_executor(config)
            else:
                os.close(fd)
                channel.send({"pid": pid})
        elif op == "exec":
            channel.send({"done": execute(executor, request["code"], config)})
        elif op == "sweep":
            channel.send({"swept": sweep(set(request["keep"]), set(request["steps"]))})
        else:
            os._exit(0)


def sweep(keep: set[int], steps: set[int]) -> int:
    """Kill every process of the jail except PID 1 (the zygote), `keep` and what runs in the
    sessions of `steps`; the number killed. Only PID 1 of a PID namespace may do this."""
    if os.getpid() != 1:
        return 0
    # Stop the world first: a stopped process cannot fork. Killing while strays fork is a race a fork
    # bomb can win (under load, pids freed by the kills are reused). A child whose fork was under way
    # as the stop went out can still escape it, so stop, list and kill again until a listing finds no
    # stray (a CI run on a loaded machine once left 53 of a bomb's processes after one round). A killed
    # process listed again before it is gone is killed again: a pid may already be a new process's.
    killed: set[int] = set()
    try:
        while _signal_all(signal.SIGSTOP):  # False: PID 1 is alone
            strays = [pid for pid, session in _processes() if pid != 1 and pid not in keep and session not in steps]
            if not strays:
                break
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            killed.update(strays)
    finally:
        _signal_all(signal.SIGCONT)
    return len(killed)


def _signal_all(signum: int) -> bool:
    """Send `signum` to every process of the jail but PID 1; False when there is none."""
    try:
        os.kill(-1, signum)
    except ProcessLookupError:
        return False
    return True


def _processes() -> list[tuple[int, int]]:
    """(pid, session id) of every live process this /proc shows (the jail's own)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        if fields[0] not in ("Z", "X"):
            found.append((int(name), int(fields[3])))
    return found


def _new_executor(config: dict[str, Any]) -> Any:
    """A fresh LocalPythonExecutor with final_answer and the parent's tools."""
    from smolagents.local_python_executor import LocalPythonExecutor

    executor = LocalPythonExecutor(
        list(config["imports"]), max_print_outputs_length=config["output_chars"], timeout_seconds=None
    )
    # Sorted: its error message lists them, and a set's order would change between processes.
    executor.authorized_imports = sorted(executor.authorized_imports)
    tools = {name: _remote_tool(name) for name in config["tools"]}
    executor.send_tools({"final_answer": lambda answer: answer, **tools})
    return executor


def _remote_tool(name: str):
    """A function that runs tool `name` in the parent process and returns its text."""

    def call(*args: Any, **kwargs: Any) -> str:
        assert _channel is not None  # main() sets it before any code runs, and each fork anew
        try:
            _channel.send({"tool": name, "args": list(args), "kwargs": kwargs})
        except TypeError:
            raise ToolError(f"{name} takes strings and numbers only") from None
        reply = _channel.recv()
        if not reply["ok"]:
            raise ToolError(reply["text"])
        return reply["text"]

    call.__name__ = name
    return call


def execute(executor: Any, code: str, config: dict[str, Any]) -> dict[str, Any]:
    """Run one step; any failure becomes the step's error."""
    # A backstop should the parent be gone: the step's CPU time is bounded even then (SIGXCPU).
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = math.ceil(used.ru_utime + used.ru_stime + config["seconds"]) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))
    try:
        return _run_step(executor, code)
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _run_step(executor: Any, code: str) -> dict[str, Any]:
    try:
        out = executor(code)
        value = _cut(str(out.output), VALUE_CHARS)
        return {
            "logs": out.logs,
            "value": value,
            "value_repr": _cut(repr(out.output), VALUE_CHARS),
            "final": bool(out.is_final_answer),
            "error": None,
        }
    except OutputLimitExceeded as error:
        message = f"Code execution failed: {error}"
    except Exception as error:  # noqa: BLE001 - every code error is an observation
        message = str(error)
    logs = str(executor.state.get("_print_outputs", ""))
    return {"logs": logs, "value": None, "value_repr": None, "final": False, "error": _cut(message, ERROR_CHARS)}


def _cut(text: str, limit: int) -> str:
    """Text cut like smolagents' truncate_content."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n..._This content has been truncated to stay below {limit} characters_...\n{text[-half:]}"
