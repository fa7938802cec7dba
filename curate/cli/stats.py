"""`curate stats`: per data set counts, correctness, cleanliness, flags, turns and tool calls."""

from __future__ import annotations

import argparse

from .common import add_db, add_debug


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "stats",
        help="per data set: questions, trajectories, correct %%, clean %%, flags",
        description="Per data set statistics of the store (SQL: sql/stats.sql).",
    )
    add_db(parser)
    parser.add_argument(
        "--format", default="table", choices=["table", "json"], help="json: a list with one object per data set"
    )
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..output import format_table, write_frame
    from ..stats import run_summary, stats, stats_table
    from ..store import Store

    with Store(args.db, read_only=True) as store:
        frame = stats(store)
        runs = run_summary(store)
    if args.format == "json":
        write_frame(frame, "json")
    else:
        print(stats_table(frame))
        if runs.height:
            print("\nscoring runs:")
            print(format_table(runs, max_rows=-1))
    return 0
