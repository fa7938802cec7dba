"""`curate selections`: list the selections stored in a store."""

from __future__ import annotations

import argparse

from .common import add_db, add_debug


def add_format(parser: argparse.ArgumentParser) -> None:
    """--format and --out for commands that print one frame (also `curate compare`)."""
    from ..output import OUTPUT_FORMATS

    parser.add_argument("--format", default="table", choices=OUTPUT_FORMATS)
    parser.add_argument("--out", help="write here instead of stdout (needed for parquet)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "selections",
        help="list stored selections with their parameters and counts",
        description="List the selections stored by `curate select` / `curate export`, newest first.",
    )
    add_db(parser)
    add_format(parser)
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..output import write_frame
    from ..select import selections
    from ..store import Store

    with Store(args.db, read_only=True) as store:
        write_frame(selections(store.con), args.format, args.out, max_rows=1000)
    return 0
