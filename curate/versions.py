"""What a stored result records of the code that made it: `code_version` of the folders that decide it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from . import __version__

HERE = Path(__file__).parent
SOURCES = (".py", ".txt", ".sql", ".j2")


def code_version(*folders: str) -> str:
    """The package version plus a hash of every source and prompt file under these folders of
    curate (file names included), e.g. `code_version("score", "render", "engine")`."""
    digest = hashlib.sha256()
    for folder in folders:
        root = HERE / folder
        if not root.is_dir():
            raise ValueError(f"code_version: no folder {folder!r} in {HERE}")
        for file in sorted(p for p in root.rglob("*") if p.suffix in SOURCES and p.is_file()):
            digest.update(str(file.relative_to(HERE)).encode() + b"\0" + file.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:10]}"
