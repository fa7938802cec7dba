"""The jail the python tool's worker runs in: bubblewrap (`bwrap`, Debian's `bubblewrap`), as Linux
agent sandboxes use it.

The worker sees an empty environment; a filesystem of the interpreter, its libraries and the
sandbox's own code read-only, and one work folder (`/sandbox`) where files can be made but hold no
bytes (RLIMIT_FSIZE 0); its own /proc, a minimal /dev, nothing else (no home, no caches, no
/etc, no curate store). Its own PID, network, IPC and UTS namespaces: it can neither see nor signal
curate, and has no network. `--die-with-parent` ends the jail with curate, `--new-session` keeps it
off curate's terminal. Run as root, the worker drops to a uid of its own (so that the process-count
limit binds: root is exempt from it); run as a user, bwrap adds a user namespace.

Why bubblewrap and not Landlock rules plus namespaces made here: one small, audited setuid-free
tool builds the whole view (mounts, namespaces, an environment set from nothing) before the
interpreter starts, where Landlock alone leaves reads open and namespaces made from inside Python
start from curate's own view. Starting one costs about 10 ms, once per sandbox (bench/sandbox.py).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent  # this folder: the worker's code, mounted read-only
CODE_ROOT = "/jail"  # in the jail, PACKAGE is /jail/sandbox
WORKDIR = "/sandbox"  # the jail's work folder (the same path on every machine, so observations are too)
_ENVIRONMENT = {
    "LANG": "C.UTF-8",
    "PATH": "/usr/bin:/bin",
    "HOME": WORKDIR,
    "PYTHONHASHSEED": "0",  # set order and error texts the same on every run
    # One BLAS thread: a forked child must not inherit a half-initialised thread pool.
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
_SYSTEM = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin")
_UIDS = itertools.count()
_UIDS_PER_PROCESS = 256  # sandboxes of one process open at once, at most, before a uid repeats


class JailUnavailable(RuntimeError):
    """This machine cannot build the jail; model code runs only with --unsafe-local-executor."""

    def __init__(self, why: str) -> None:
        super().__init__(
            f"model-written code runs only in a jail, and {why}; or pass --unsafe-local-executor "
            "to run it without one (it can then read your files and use your network)"
        )


def environment() -> dict[str, str]:
    """The worker's whole environment: nothing of curate's (no tokens, no keys)."""
    return dict(_ENVIRONMENT)


def boot(root: str) -> list[str]:
    """The interpreter's arguments that start the worker from the package folder under `root`."""
    code = f"import sys; sys.path[0] = {root!r}; from sandbox.worker import main; main()"
    return ["-s", "-c", code]


def import_paths(modules: Sequence[str]) -> list[str]:
    """The import folders (entries of sys.path) that hold these top-level modules."""
    found = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        origin = spec and (
            spec.origin
            if spec.submodule_search_locations is None
            else next(iter(spec.submodule_search_locations), None)
        )
        if not origin:
            continue
        for entry in sys.path:
            if entry and Path(origin).is_relative_to(entry) and entry not in found:
                found.append(entry)
                break
    return found


def interpreter_folders(paths: Sequence[str]) -> list[str]:
    """Everything the interpreter needs to read: its prefixes and the given import folders."""
    wanted = {Path(os.path.realpath(p)) for p in (sys.base_prefix, sys.prefix, *paths)}
    wanted |= {Path(sys.prefix).absolute(), Path(sys.executable).absolute().parent.parent}
    outside = [f for f in wanted if not any(f.is_relative_to(s) for s in _SYSTEM)]
    # A folder inside another is already visible through it.
    return sorted(str(f) for f in outside if not any(f != o and f.is_relative_to(o) for o in outside))


def jail_uid() -> int | None:
    """A uid of the jail's own when curate runs as root (None otherwise): the limit on processes
    counts per uid and never binds root. Each process takes its uids from a block of its own (pids
    are below 2**22, so the blocks end below 2**31): two processes sharing a uid would share one
    limit, and a fork bomb in one's jail would starve the other's."""
    if os.geteuid() != 0:
        return None
    return 100_000 + os.getpid() * _UIDS_PER_PROCESS + next(_UIDS) % _UIDS_PER_PROCESS


def bwrap_command(workdir: str, folders: Sequence[str], uid: int | None) -> list[str]:
    """bwrap's command line that runs the worker (this interpreter) jailed; see the module docstring."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise JailUnavailable("bubblewrap is not installed: install it (Debian, Ubuntu: apt-get install bubblewrap)")
    argv = [
        bwrap,
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--as-pid-1",
        "--hostname",
        "sandbox",
        "--clearenv",
    ]
    if uid is None:
        argv.append("--unshare-user")
    else:  # the worker drops to `uid` before anything else; it keeps no capability after that
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    for name, value in environment().items():
        argv += ["--setenv", name, value]
    for path in _SYSTEM:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    made: set[str] = set()
    for folder in folders:
        argv += _parents(folder, made) + ["--ro-bind", folder, folder]
    argv += _parents(f"{CODE_ROOT}/sandbox", made) + ["--ro-bind", str(PACKAGE), f"{CODE_ROOT}/sandbox"]
    argv += ["--bind", workdir, WORKDIR, "--proc", "/proc", "--dev", "/dev", "--chdir", WORKDIR]
    return argv + ["--", sys.executable, *boot(CODE_ROOT)]


def _parents(path: str, made: set[str]) -> list[str]:
    """bwrap arguments that make `path`'s missing parent folders world-readable (bwrap's own are 0700)."""
    args = []
    for parent in reversed(Path(path).parents[:-1]):
        if str(parent) not in made:
            made.add(str(parent))
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def bwrap_version() -> str:
    """`bubblewrap X.Y.Z`, as bwrap prints it."""
    done = subprocess.run([shutil.which("bwrap") or "bwrap", "--version"], capture_output=True, text=True)
    return done.stdout.strip() or "bubblewrap"
