"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse

from ..store import DEFAULT_DB


def add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=DEFAULT_DB, help=f"DuckDB store file (default: {DEFAULT_DB})")


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
