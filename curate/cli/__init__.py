"""The `curate` command line: one module per subcommand, each a thin call into the library.

Subcommand modules import heavy libraries (torch, transformers, datasets) inside their `run`
function, so `curate --help` stays fast. Those that load a model say so (`loads_model`): only they
get the engine's settings that must precede torch (`curate.engine.before_torch`: on a CPU, how
OpenMP threads wait, which reads the machine's load).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import signal
import sys
from typing import NoReturn

from .. import __version__
from ..engine import before_torch
from .errors import one_line

INTERRUPTED = 130  # a command ended by SIGINT, as shells report it (128 + 2)

# Order is the order of `curate --help`: the pipeline, then tools.
COMMANDS = [
    "demo",
    "synth",
    "generate",
    "ingest",
    "grade",
    "stats",
    "query",
    "render",
    "score",
    "select",
    "selections",
    "compare",
    "export",
    "train",
    "merge",
    "eval",
    "eval_report",
    "analyze",
    "figures",
    "replay",
    "report",
    "tiny_model",
    "model",
]


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors in one line, like every other error of the CLI."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The `curate` parser; subcommand parsers (and theirs) are `Parser`s too."""
    parser = Parser(
        prog="curate",
        description="Curate teacher-agent trajectories for capacity-aligned agent distillation.",
    )
    parser.add_argument("--version", action="version", version=f"curate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run one subcommand; an error a user can act on prints one line
    (`curate.cli.errors`) and exits 2, Ctrl-C one line and exits 130, with the traceback under --debug."""
    args = build_parser().parse_args(argv)
    if getattr(args, "loads_model", False):
        before_torch()  # the subcommands import torch only when they run
    interrupts = _Interrupts()
    previous = signal.signal(signal.SIGINT, interrupts)
    try:
        return args.func(args) or 0
    except (KeyboardInterrupt, Exception) as error:
        if getattr(args, "debug", False):
            raise
        if interrupts.seen or isinstance(error, KeyboardInterrupt):
            # Every write is one transaction or a file renamed into place: nothing is half-written.
            print(f"curate {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
            return INTERRUPTED
        message = one_line(error, args)
        if message is None:
            raise
        print(f"curate {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class _Interrupts:
    """A SIGINT handler that counts, then raises KeyboardInterrupt as Python's own does. A library may
    turn that into an error of its own (DuckDB: "Query interrupted", a failed Arrow scan), or cleanup
    may fail on the transaction it aborted; the count still says Ctrl-C ended the command."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, signum: int, frame: object) -> None:
        self.seen += 1
        raise KeyboardInterrupt


def run() -> NoReturn:
    """The `curate` program: `main` on the command line, then exit. What is left (torch's and
    transformers' objects, a model) is frozen out of the garbage collector first: the collections
    Python runs as it shuts down would walk it all, ~1 s per command for nothing."""
    code = main()
    gc.freeze()
    sys.exit(code)
