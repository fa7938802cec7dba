"""`curate sql "SELECT ..."` / `curate sql --file F --param k=v`: query the store."""

from __future__ import annotations

import argparse

from ..output import OUTPUT_FORMATS
from .bounds import COUNT
from .common import add_db, add_debug


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "sql",
        help="run SQL on the store (bound parameters) and print or save the result",
        description="Run one SQL statement, given inline or as a .sql file (a path, or a name under "
        "the package's sql/ folder such as 'stats'). Parameters are bound by DuckDB as text, never "
        "spliced into the SQL; DuckDB casts them where the query compares them with numbers.",
    )
    parser.add_argument("query", nargs="?", help="the SQL text")
    parser.add_argument("--file", help="a .sql file or the name of one under sql/")
    parser.add_argument("--param", action="append", default=[], metavar="K=V", help="bind $K to V (repeatable)")
    add_db(parser)
    parser.add_argument("--format", default="table", choices=OUTPUT_FORMATS)
    parser.add_argument("--out", help="write here instead of stdout (needed for parquet)")
    parser.add_argument("--max-rows", type=COUNT, default=50, help="rows shown by --format table")
    parser.add_argument("--write", action="store_true", help="open the store for writing (default: read-only)")
    add_debug(parser)
    parser.set_defaults(func=run)


def parse_params(items: list[str]) -> dict[str, str]:
    """`k=v` strings to a parameter dict (the value is everything after the first '=')."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--param {item!r}: expected NAME=VALUE")
        params[key] = value
    return params


def run(args: argparse.Namespace) -> int:
    from ..output import write_frame
    from ..queries import sql_text
    from ..store import Store

    if (args.query is None) == (args.file is None):
        raise ValueError("give the SQL text or --file (one of them)")
    text = args.query if args.file is None else sql_text(args.file)
    with Store(args.db, read_only=not args.write) as store:
        result = store.con.sql(text, params=parse_params(args.param) or None)
        if result is None:
            print("ok")
            return 0
        write_frame(result.pl(), args.format, args.out, args.max_rows)
    return 0
