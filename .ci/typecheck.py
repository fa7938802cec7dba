"""The type check: mypy over the curate package as it installs. Run `.venv/bin/python .ci/typecheck.py`.

mypy finds a module by its folder and knows nothing of setuptools' package-dir, so train/, analysis/,
figures/ and sql/ would be checked as top-level `train`, ... : `curate.train` would not resolve, nor
would train/'s own `from ..render import ...`. So mypy reads build/typecheck/curate, a tree of symlinks
laid out from pyproject.toml's [tool.setuptools.package-dir] (curate/* beside curate/train -> train/, ...),
and its messages are printed with the repository's paths. mypy's settings are pyproject.toml's
[tool.mypy]; extra arguments go to mypy as they are.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mypy import api

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: mypy itself depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
TREE = Path("build", "typecheck")


def package_dirs() -> dict[str, str]:
    """pyproject.toml's package-dir: each package's folder in the tree (curate/train) and in the repository."""
    with open(ROOT / "pyproject.toml", "rb") as file:
        mapping = tomllib.load(file)["tool"]["setuptools"]["package-dir"]
    return {package.replace(".", "/"): folder for package, folder in mapping.items()}


def links(packages: dict[str, str]) -> dict[Path, Path]:
    """Every symlink of the tree and its target: a top-level package is a folder of links to its entries, a
    package mapped inside it one link to its folder."""
    wanted = {}
    for package, folder in packages.items():
        parent = package.rpartition("/")[0]
        if not parent:
            for entry in (ROOT / folder).iterdir():
                if entry.name != "__pycache__" and f"{package}/{entry.name}" not in packages:
                    wanted[TREE / package / entry.name] = entry
        elif parent in packages and "/" not in parent:
            wanted[TREE / package] = ROOT / folder
        else:
            raise SystemExit(f"typecheck: {package}: only a package mapped right inside a top-level one is laid out")
    return wanted


def lay_out(wanted: dict[Path, Path]) -> None:
    """Make the tree hold exactly the wanted links, leaving those already right in place (a second run at the
    same time finds nothing to change)."""
    for link, target in wanted.items():
        path = ROOT / link
        if path.is_symlink() and Path(os.readlink(path)) == target:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.symlink_to(target)
    for folder, folders, files in os.walk(ROOT / TREE):
        for name in folders + files:
            path = Path(folder, name)
            if path.is_symlink() and path.relative_to(ROOT) not in wanted:
                path.unlink()


def repository_paths(text: str, packages: dict[str, str]) -> str:
    """mypy's text with each tree path put back as the repository's (train/loss.py for .../curate/train/loss.py)."""
    # longest first, so that build/typecheck/curate/train/ becomes train/ and not curate/train/
    for package in sorted(packages, key=len, reverse=True):
        text = text.replace(f"{TREE / package}/", f"{packages[package]}/")
    return text


def main(argv: list[str]) -> int:
    """Lay the tree out, run mypy on it and print its report with the repository's paths."""
    os.chdir(ROOT)
    packages = package_dirs()
    lay_out(links(packages))
    stdout, stderr, status = api.run([str(TREE / "curate"), *argv])
    sys.stdout.write(repository_paths(stdout, packages))
    sys.stderr.write(repository_paths(stderr, packages))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
