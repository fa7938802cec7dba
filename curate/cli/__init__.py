"""The `curate` command line: one module per subcommand, each a thin call into the library.

Subcommand modules import heavy libraries (torch, transformers, datasets) inside their `run`
function, so `curate --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__

# Order is the order of `curate --help`: the pipeline, then tools.
COMMANDS = [
    "demo",
    "synth",
    "ingest",
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
    "analyze",
    "figures",
    "report",
    "tiny_model",
    "model",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="curate",
        description="Curate teacher-agent trajectories for capacity-aligned agent distillation.",
    )
    parser.add_argument("--version", action="version", version=f"curate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run one subcommand; errors in user input print one line, exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        if getattr(args, "debug", False):
            raise
        print(f"curate {args.command}: error: {error}", file=sys.stderr)
        return 2
