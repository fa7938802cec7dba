"""Resolve `--student` values: a local checkpoint folder or a built-in name."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where built-in models are materialised ($CURATE_CACHE, else the user's cache folder)."""
    root = os.environ.get("CURATE_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "curate"
    return Path(root)


def _tiny() -> Path:
    from .tiny import write_tiny_model

    out = cache_dir() / "tiny"
    if not (out / "config.json").is_file():
        write_tiny_model(out)
    return out


BUILTIN = {"tiny": _tiny}


def student_key(spec: str) -> str:
    """How a student is recorded in scoring_runs: a built-in name as is, a path made absolute."""
    return spec if spec in BUILTIN else str(Path(spec).expanduser().resolve())


def resolve_student(spec: str) -> Path:
    """A folder that `from_pretrained` loads: the path given, or a built-in model materialised once."""
    if spec in BUILTIN:
        return BUILTIN[spec]()
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"--student {spec!r}: not a model folder (no config.json) and not a built-in name "
            f"({', '.join(BUILTIN)}); point it at any local checkpoint, e.g. a downloaded "
            "Qwen2.5-1.5B-Instruct folder"
        )
    return path
