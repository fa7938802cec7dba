"""`curate compare SEL_A SEL_B`: two stored selections side by side."""

from __future__ import annotations

import argparse

from .common import add_db, add_debug
from .selections import add_format


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "compare",
        help="compare two stored selections",
        description="For two stored selections: how many questions chose the same trajectory, and "
        "each selection's mean NLL, assistant characters, tool calls and turns.",
    )
    parser.add_argument("a", metavar="SEL_A", help="selection id")
    parser.add_argument("b", metavar="SEL_B", help="selection id")
    add_db(parser)
    add_format(parser)
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..output import write_frame
    from ..select import compare
    from ..store import Store

    with Store(args.db, read_only=True) as store:
        write_frame(compare(store.con, args.a, args.b), args.format, args.out)
    return 0
