"""`curate eval-report`: several eval runs side by side, Table 2 shaped, the best per column marked."""

from __future__ import annotations

import argparse

from .common import add_db, add_debug


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval-report",
        help="Table 2 of several eval runs side by side (base, AD, SmartAD ...), best per column marked",
        description="Read eval runs from the store (curate eval) and write Table 2 with one row per run and "
        "one column per benchmark in the paper's order, then the average: table.md and table.tex (the best "
        "value per column in bold) and table.csv. Prints the Markdown.",
    )
    add_db(parser)
    parser.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="eval run ids or names, in row order (default: every eval run in the store, in the order they started)",
    )
    parser.add_argument("--out", required=True, help="folder for table.md, table.csv, table.tex")
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..eval.outputs import check_out
    from ..eval.tables import load_rows, write_tables
    from ..store import Store

    check_out(args.out)
    with Store(args.db, read_only=True) as store:
        rows = load_rows(store.con, args.runs)
    if not rows:
        raise ValueError(f"{args.db}: no eval runs (curate eval writes them)")
    print(write_tables(rows, Path(args.out)), end="")
    return 0
