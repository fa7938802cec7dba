"""The `curate` command line: one module per subcommand, each a thin call into the library.

Subcommand modules import heavy libraries (torch, transformers, datasets) inside their `run`
function, so `curate --help` stays fast.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from typing import NoReturn

from .. import __version__
from ..threads import set_wait_policy
from .errors import one_line

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
    (`curate.cli.errors`) and exits 2, with the traceback under --debug."""
    set_wait_policy()  # before torch is imported
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except Exception as error:
        message = None if getattr(args, "debug", False) else one_line(error, args)
        if message is None:
            raise
        print(f"curate {args.command}: error: {message}", file=sys.stderr)
        return 2


def run() -> NoReturn:
    """The `curate` program: `main` on the command line, then exit. What is left (torch's and
    transformers' objects, a model) is frozen out of the garbage collector first: the collections
    Python runs as it shuts down would walk it all, ~1 s per command for nothing."""
    code = main()
    gc.freeze()
    sys.exit(code)
