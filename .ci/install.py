"""`pip install` into a virtual environment, done by uv: `python3 .ci/install.py VENV ARGS...`, ARGS as
pip install's. uv resolves as pip does here (the best version over all indexes: `pip freeze` of
.venv-vllm made either way is the same, torch's CPU build included) in well under half of pip's time: it
downloads and unpacks wheels in parallel, compiles bytecode on every core, and unpacks a wheel once for
both environments (torch, 750 MB). uv reads none of pip's configuration, so the machine's (pip.conf and
PIP_* variables: indexes, find-links, constraints, certificates) is handed on; a UV_* variable already set
wins. uv itself is installed into VENV by the VENV's pip. Like pip, it compiles every module's bytecode
unless told `--no-compile`.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

UV = "uv==0.13.10"
# pip's option -> uv's variable, and how that variable separates a list (pip's are whitespace-separated).
SETTINGS = {
    "index-url": ("UV_DEFAULT_INDEX", " "),
    "extra-index-url": ("UV_EXTRA_INDEX_URL", " "),
    "find-links": ("UV_FIND_LINKS", ","),
    "constraint": ("UV_CONSTRAINT", " "),
    "cert": ("SSL_CERT_FILE", " "),
}
PRECEDENCE = {"global": 0, "install": 1, ":env:": 2}  # a later one overrides an earlier one, as in pip


def pip_settings(python: Path) -> dict[str, str]:
    """pip's options for `pip install` as `pip config list` prints them (`global.find-links='/opt/wheels'`)."""
    listed = subprocess.run(
        [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    found = []
    for line in listed:
        key, _, value = line.partition("=")
        section, _, option = key.rpartition(".")
        if section in PRECEDENCE:
            found.append((PRECEDENCE[section], option, ast.literal_eval(value)))
    return {option: value for _, option, value in sorted(found)}


def main(venv: Path, args: list[str]) -> None:
    python, uv = venv / "bin" / "python", venv / "bin" / "uv"
    if not uv.exists():
        subprocess.run([python, "-m", "pip", "install", "-q", UV], check=True)
    env = dict(os.environ)
    for option, value in pip_settings(python).items():
        if option in SETTINGS:
            variable, separator = SETTINGS[option]
            env.setdefault(variable, separator.join(value.split()))
    compile_all = [] if "--no-compile" in args else ["--compile-bytecode"]
    command = ["pip", "install", "--quiet", "--python", str(python), *compile_all]
    args = [a for a in args if a != "--no-compile"]
    os.execve(uv, [str(uv), *command, "--index-strategy", "unsafe-best-match", *args], env)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
