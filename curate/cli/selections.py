"""`curate selections`: list the selections stored in a store."""

from __future__ import annotations

import argparse

from .common import add_db, add_debug


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "selections",
        help="list stored selections with their parameters and counts",
        description="List the selections stored by `curate select` / `curate export`, newest first.",
    )
    add_db(parser)
    add_debug(parser)
    parser.set_defaults(func=run)


def print_frame(frame) -> None:
    """Print a whole Polars frame as a Markdown-style table: every row and column, no dtypes."""
    import polars as pl

    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
                   tbl_formatting="ASCII_MARKDOWN", tbl_width_chars=10_000, fmt_str_lengths=200):
        print(frame)


def run(args: argparse.Namespace) -> int:
    from ..select import selections
    from ..store import Store

    with Store(args.db, read_only=True) as store:
        print_frame(selections(store.con))
    return 0
