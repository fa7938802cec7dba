"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse

from ..store import DEFAULT_DB


def add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=DEFAULT_DB, help=f"DuckDB store file (default: {DEFAULT_DB})")


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def add_run(parser: argparse.ArgumentParser) -> None:
    """--run ID or --student S (its latest finished scoring run); resolved by curate.runs.resolve_run."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--run", help="scoring run id (default: the store's only finished run)")
    which.add_argument("--student", help="student path or built-in name: its latest finished scoring run")
