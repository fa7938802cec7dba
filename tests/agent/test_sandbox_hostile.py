"""The python tool as a boundary: hostile steps with full code execution in the worker (through
sympy's eval and through libc) neither reach the host, a secret or curate, nor outlive their step."""

from __future__ import annotations

import itertools
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hostile import SECRETS, attacks, environment_with_secrets, survivors, unpickled, via_sympy

from curate.agent.sandbox import JailUnavailable, Limits, PythonSandbox, StepResult, jail
from curate.agent.sandbox.channel import Channel, ProtocolError
from curate.agent.sandbox.jail import jail_uid
from curate.agent.sandbox.scrub import Secrets

LIMITS = Limits(seconds=3, memory_mb=512, output_chars=10_000, processes=64)
TEXTS = ("observation", "error", "final_answer", "logs", "value", "value_repr")


def jail_processes(sandbox: PythonSandbox) -> list[int]:
    """Host pids of every process in the sandbox's jail (its PID namespace)."""
    outer = sandbox._process.pid  # bwrap; its one child is the jail's PID 1
    children = Path(f"/proc/{outer}/task/{outer}/children").read_text().split()
    namespace = os.readlink(f"/proc/{children[0]}/ns/pid")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "pid") == namespace:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def settle(sandbox: PythonSandbox, expected: int) -> list[int]:
    """The jail's processes once killed ones are gone (a SIGKILL lands within milliseconds)."""
    for _ in range(100):
        found = jail_processes(sandbox)
        if len(found) <= expected:
            return found
        time.sleep(0.05)
    return found


@pytest.fixture
def secrets_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    for name, value in environment_with_secrets(home).items():
        monkeypatch.setenv(name, value)
    return home


@pytest.mark.parametrize("route", ["sympy", "libc"])
def test_hostile_steps_do_not_escape_leak_or_survive(route: str, tmp_path: Path, secrets_env: Path, listener) -> None:
    outside = tmp_path / "outside"
    port = listener.getsockname()[1]
    expected = {  # what each step shows: the jail's answer, never the host's
        ("sympy", "environment secrets"): "value: ['HOME', 'LANG', 'MKL_NUM_THREADS', 'OMP_NUM_THREADS', "
        "'OPENBLAS_NUM_THREADS', 'PATH', 'PWD', 'PYTHONHASHSEED']",
        ("sympy", "token file in home"): "error: No such file or directory",
        ("sympy", "proc environ"): "error: Permission denied",
        ("sympy", "write outside"): "error: No such file or directory",
        ("sympy", "kill ancestors"): "value: still here",
        ("sympy", "surviving processes"): "value: forked",
        ("sympy", "fork bomb"): "error: the step exceeded the time limit of 3 s",
        ("sympy", "network"): "error: Connection refused",
        ("sympy", "forged channel message"): "error: its process sent a message of",
        ("libc", "environment secrets"): "logs: 256",  # `test -n` found nothing: status 1
        ("libc", "token file in home"): "logs: 256",
        ("libc", "proc environ"): "logs: 256",
        ("libc", "write outside"): "logs: 512",  # sh cannot open the file: status 2
        ("libc", "kill ancestors"): "error: its process ended abnormally",  # $PPID is the step itself
        ("libc", "surviving processes"): "logs: 0",
        ("libc", "fork bomb"): "logs: 0",  # the bomb runs on in the background, until the step ends
        ("libc", "network"): "logs: 256",
        ("libc", "forged channel message"): "error: its process sent a message of",
    }
    with PythonSandbox(LIMITS, workers=2) as sandbox:
        keep = sandbox.open()
        sandbox.run([(keep, "values = [1, 2, 3]")])
        for name, steps in attacks(secrets_env, outside, port).items():
            code = steps[0] if route == "sympy" else steps[1]
            run = sandbox.open()
            [result] = sandbox.run([(run, code)])
            field, text = expected[route, name].split(": ", 1)
            shown = getattr(result, field)
            assert shown is not None and text in shown.replace("\n", " "), (name, result)
            for value in SECRETS.values():
                assert all(value not in (getattr(result, t) or "") for t in TEXTS), (name, result)
            assert not outside.exists() and not unpickled(outside).exists(), name
            with pytest.raises(TimeoutError):
                listener.accept()
            # nothing a step started outlives it: the jail holds its PID 1 and the two open runs at most
            assert len(settle(sandbox, 3)) <= 3 and survivors() == [], name
            sandbox.release(run)
            # the sandbox goes on; a step that killed every process it could took the other run's
            # state with it (runs share the jail), and that run says so and starts again empty
            [after] = sandbox.run([(keep, "values")])
            if name == "kill ancestors":
                assert after.error.startswith("Code execution failed: the run's process broke"), after
                sandbox.run([(keep, "values = [1, 2, 3]")])
            else:
                assert after.value == "[1, 2, 3]", (name, after)
        assert sandbox.redacted == 0


def test_the_jail_dies_with_its_parent(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys, threading
        from curate.agent.sandbox import PythonSandbox
        sandbox = PythonSandbox()
        sandbox.run([(sandbox.open(), "x = 1")])
        print(sandbox._process.pid, flush=True)
        threading.Event().wait()
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    bwrap = int(parent.stdout.readline())
    zygote = int(Path(f"/proc/{bwrap}/task/{bwrap}/children").read_text().split()[0])
    namespace = os.readlink(f"/proc/{zygote}/ns/pid")
    parent.kill()
    parent.wait()
    for _ in range(100):
        left = [e for e in Path("/proc").iterdir() if e.name.isdigit() and _in(e, namespace)]
        if not left:
            break
        time.sleep(0.05)
    assert left == []


def _in(entry: Path, namespace: str) -> bool:
    try:
        return os.readlink(entry / "ns" / "pid") == namespace
    except OSError:
        return False


def test_results_are_scrubbed_of_the_parents_secrets(secrets_env: Path) -> None:
    # A tool runs in curate, with curate's environment: one that echoes a secret stands in for any
    # hole through which a secret could come back.
    leaky = {"web_search": lambda query: f"{query}: {os.environ['HF_TOKEN']} and {os.environ['DB_PASSWORD']}"}
    with PythonSandbox(LIMITS, tools=leaky) as sandbox:
        [r] = sandbox.run([(sandbox.open(), "text = web_search('found')\nprint(text)\ntext")])
        assert sandbox.isolation["secrets"].startswith("3 secret-looking values")
    assert r.logs == "found: [redacted $HF_TOKEN] and [redacted $DB_PASSWORD]\n"
    assert r.value == "found: [redacted $HF_TOKEN] and [redacted $DB_PASSWORD]"
    assert r.redacted == 4 and sandbox.redacted == 4  # in the observation: two in the logs, two in the value


def test_secrets_are_the_secret_looking_names_with_long_values() -> None:
    secrets = Secrets(
        {
            "HF_TOKEN": "hf_abcdefgh",
            "MY_API_KEY": "k" * 20,
            "SHORT_KEY": "1234567",
            "HOME": "/root",
            "db_password": "hunter2hunter2",
            "PATH": "/usr/bin",
        }
    )
    assert len(secrets) == 3
    assert secrets.scrub("a hf_abcdefgh b hunter2hunter2") == ("a [redacted $HF_TOKEN] b [redacted $db_password]", 2)
    assert secrets.scrub("1234567 /root") == ("1234567 /root", 0)
    r = secrets.scrub_result(StepResult.success("kkkkkkkkkkkkkkkkkkkk\n", "x", "'x'"))
    assert r.logs == "[redacted $MY_API_KEY]\n" and r.redacted == 1


def test_the_channel_refuses_oversized_and_malformed_messages() -> None:
    ours, theirs = socket.socketpair()
    reader = Channel(ours, limit=100)
    theirs.sendall((1000).to_bytes(4, "big"))  # refused from the header, before any body is read
    with pytest.raises(ProtocolError, match="a message of 1,000 bytes \\(the limit is 100\\)"):
        reader.recv(1)
    for body, error in ((b"\x80\x04not json", "not JSON"), (b"[1, 2]", "not an object")):
        ours, theirs = socket.socketpair()
        theirs.sendall(len(body).to_bytes(4, "big") + body)
        with pytest.raises(ProtocolError, match=error):
            Channel(ours, limit=100).recv(1)
    ours, theirs = socket.socketpair()
    theirs.sendall((10).to_bytes(4, "big") + b'{"a"')  # a message that never completes
    with pytest.raises(TimeoutError):
        Channel(ours, limit=100).recv(0.2)


def test_replies_of_the_wrong_shape_or_size_are_the_steps_error() -> None:
    # a well-formed frame whose result prints more than the limit allows
    forged = via_sympy(
        "import os, json, struct\nbody = json.dumps({'done': {'logs': 'x' * 20000, 'value': None, "
        "'value_repr': None, 'final': False, 'error': None}}).encode()\n"
        "for fd in range(3, 16):\n    try:\n        os.write(fd, struct.pack('>I', len(body)) + body)\n"
        "    except OSError:\n        pass\n"
    )
    with PythonSandbox(LIMITS) as sandbox:
        h = sandbox.open()
        [r] = sandbox.run([(h, forged)])
        assert r.error.startswith("Code execution failed: its process sent a result of the wrong shape or size")
        assert sandbox.run([(h, "1 + 1")])[0].value == "2"


def test_a_machine_without_a_jail_refuses_model_code_unless_told(tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / "bin" / "bwrap"  # what bwrap says where the kernel allows no user namespaces
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because the "
        "kernel does not allow non-privileged user namespaces.' >&2\nexit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    with pytest.raises(JailUnavailable) as refused:
        PythonSandbox(LIMITS)
    assert str(refused.value) == (
        "model-written code runs only in a jail, and bubblewrap cannot make one on this machine (bwrap: No "
        "permissions to creating new namespace, likely because the kernel does not allow non-privileged user "
        "namespaces.): allow unprivileged user namespaces, or run curate as root; or pass --unsafe-local-executor "
        "to run it without one (it can then read your files and use your network)"
    )
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(JailUnavailable, match="bubblewrap is not installed: install it"):
        PythonSandbox(LIMITS)
    with PythonSandbox(LIMITS, unsafe=True) as sandbox:
        assert sandbox.isolation["jail"].startswith("none (--unsafe-local-executor)")
        assert sandbox.describe() == "python tool: NO JAIL (--unsafe-local-executor)"
        [r] = sandbox.run([(sandbox.open(), "import sympy\nsympy.sympify(\"__import__('os').environ.get('PATH')\")")])
    assert r.value == "/usr/bin:/bin"  # even without a jail, the worker's environment is its own


def test_jails_of_two_processes_never_share_a_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    # A shared uid pools the limit on processes: a fork bomb in one process's jail once starved the jail
    # of a pytest worker beside it (adjacent pids, the 65th sandbox of one against the first of the other).
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    uids = []
    for pid in (30_000, 30_001, 4_194_303):  # the last: the largest pid Linux gives
        monkeypatch.setattr(os, "getpid", lambda pid=pid: pid)
        monkeypatch.setattr(jail, "_UIDS", itertools.count())  # each process counts its own sandboxes
        uids += [jail_uid() for _ in range(256)]
    assert len(set(uids)) == 3 * 256
    assert 100_000 <= min(uids) and max(uids) == 100_000 + 4_194_303 * 256 + 255 < 2**31


def test_a_fork_bomb_stops_neither_the_jail_nor_the_steps_beside_it() -> None:
    bomb = via_sympy("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
    with PythonSandbox(LIMITS, workers=2) as sandbox:
        bomber, others = sandbox.open(), [sandbox.open() for _ in range(6)]
        sandbox.run([(h, f"x = {n}") for n, h in enumerate(others)])
        # the other steps' forks are refused while the bomb holds every process it may: they wait
        # for a step to end and its processes to be killed, then run as if nothing had happened
        results = sandbox.run([(bomber, bomb), *((h, "x + 10") for h in others)])
        assert results[0].error == (
            "Code execution failed: the step exceeded the time limit of 3 s; the step was "
            "stopped and its changes to the variables discarded"
        )
        assert [r.value for r in results[1:]] == [str(n + 10) for n in range(6)]
        assert len(settle(sandbox, 8)) == 8  # PID 1 and the seven runs
        assert sandbox.run([(sandbox.open(), "1 + 1")])[0].value == "2"
