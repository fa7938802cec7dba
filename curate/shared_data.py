"""Find the project's shared data folder (real question sets and agent runs).

Looked up, in order: $CURATE_SHARED_DATA, then a `shared/data` folder beside any parent of the
working directory or of this package (a checkout sits next to `shared/`).
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_data_dir() -> Path | None:
    """The shared data folder, or None where this machine has none."""
    if env := os.environ.get("CURATE_SHARED_DATA"):
        return Path(env)
    for start in (Path.cwd(), Path(__file__).resolve()):
        for parent in [start, *start.parents]:
            candidate = parent / "shared" / "data"
            if (candidate / "README.md").is_file():
                return candidate
    return None


def require_shared_data() -> Path:
    """The shared data folder; a clear error where it is missing."""
    found = shared_data_dir()
    if found is None:
        raise FileNotFoundError(
            "shared data not found: set CURATE_SHARED_DATA to the folder holding questions/ and "
            "trajectories/ (in a checkout it is ../shared/data)"
        )
    return found
