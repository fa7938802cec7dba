"""pyproject.toml's hand-kept package list holds the tree: every folder with Python files or package data
is a listed package (train/ installs as curate.train, ...), every data file is named by package-data, and a
wheel built from the tree holds exactly the tree's files, built without a warning from setuptools."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: mypy, a dev dependency, brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
PACKAGE_DIR: dict[str, str] = SETUPTOOLS["package-dir"]  # curate.train -> train


def folder(package: str) -> Path:
    """Where a package's files sit in the repository: train/ for curate.train, curate/cli/ for curate.cli."""
    mapped = max((p for p in PACKAGE_DIR if package == p or package.startswith(p + ".")), key=len)
    return ROOT / PACKAGE_DIR[mapped] / package.removeprefix(mapped).lstrip(".").replace(".", "/")


def tree() -> dict[str, list[Path]]:
    """Every folder under the mapped folders that holds files, by the package it installs as, with its files."""
    found: dict[str, list[Path]] = {}
    for package, top in PACKAGE_DIR.items():
        for path in sorted((ROOT / top).rglob("*")):
            inside = path.relative_to(ROOT / top)
            if path.is_file() and "__pycache__" not in inside.parts and not path.name.startswith("."):
                found.setdefault(".".join([package, *inside.parent.parts]), []).append(path)
    return found


def test_every_folder_with_files_is_a_listed_package() -> None:
    unlisted = sorted(set(tree()) - set(SETUPTOOLS["packages"]))
    assert not unlisted, f"folders with Python files or package data missing from pyproject.toml's packages: {unlisted}"
    assert not sorted(set(SETUPTOOLS["packages"]) - set(tree())), "pyproject.toml lists packages with no files"


def test_every_data_file_is_package_data() -> None:
    # each pattern is a glob in its package's folder, as setuptools reads it
    named = {
        path
        for package, patterns in SETUPTOOLS["package-data"].items()
        for pattern in patterns
        for path in folder(package).glob(pattern)
    }
    data = [path for files in tree().values() for path in files if path.suffix != ".py"]
    assert not [str(path.relative_to(ROOT)) for path in data if path not in named]


def test_the_wheel_holds_the_tree_and_builds_without_a_warning(tmp_path: Path) -> None:
    source, out = tmp_path / "source", tmp_path / "dist"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for top in set(PACKAGE_DIR.values()):
        shutil.copytree(ROOT / top, source / top, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    # setuptools' own backend, as pip runs it (without pip's index look-ups); its warnings go to stderr
    build = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", build, str(out)], cwd=source, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    with zipfile.ZipFile(out / done.stdout.strip().splitlines()[-1]) as wheel:
        installed = {name for name in wheel.namelist() if ".dist-info/" not in name}
    expected = {f"{package.replace('.', '/')}/{path.name}" for package, files in tree().items() for path in files}
    assert installed == expected
