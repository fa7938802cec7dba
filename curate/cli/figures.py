"""`curate figures`: every table and figure of one scoring run, with index.md, into a folder."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .analyze import add_rule
from .common import add_db, add_debug, add_run

if TYPE_CHECKING:
    from ..figures.common import FigureData

FIGURES_RULE_HELP = "bucketing rule of the tables and Fig 4 (Fig 3 shows both; default: quantile)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "figures",
        help="write the tertile tables (CSV, Markdown, LaTeX), Figs 3-4, the per-model plot and index.md",
        description="Regenerate the paper's Tables 7-9 and Figures 3-4 (plus a per-teacher-model plot) "
        "for one scoring run into DIR, deterministically (same store, same bytes).",
    )
    add_db(parser)
    add_run(parser)
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    add_rule(parser, FIGURES_RULE_HELP)
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..figures.build import FiguresConfig, write_figures
    from ..runs import resolve_run
    from ..store import Store

    with Store(args.db, create=False) as store:
        run_id = resolve_run(store.con, run_id=args.run, student=args.student)
        result = write_figures(store.con, FiguresConfig(str(args.db), run_id, str(args.out), args.rule))
    print(f"wrote {len(result.files)} files (SQL {result.sql_s:.1f} s, plots {result.plot_s:.1f} s)")
    for note in result.notes:
        print(f"note: {note}")
    print(result.index)
    return 0


def script_main(write: Callable[[FigureData, Path], list[Path]], doc: str) -> None:
    """A figure script's main (`python -m figures.fig3 ...`): parse --db, --run or --student, --out
    and --rule, collect the data, write the figure, print its files."""
    from ..analysis import refresh_repetition
    from ..figures.common import collect
    from ..runs import resolve_run
    from ..store import Store

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--db", required=True, help="DuckDB store")
    add_run(parser)
    parser.add_argument("--out", required=True, help="output folder")
    add_rule(parser, FIGURES_RULE_HELP)
    args = parser.parse_args()
    with Store(args.db) as store:
        run_id = resolve_run(store.con, run_id=args.run, student=args.student)
        refresh_repetition(store.con)
        data = collect(store.con, run_id, args.rule)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in write(data, out):
        print(path)
