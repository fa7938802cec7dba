"""Load the project's `.sql` files by name and run them with bound parameters."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import duckdb
import polars as pl


def sql_text(name_or_path: str | Path) -> str:
    """The text of `name` under sql/ (e.g. 'policies/min_nll'), or of a `.sql` file path."""
    path = Path(name_or_path)
    if path.suffix == ".sql" and path.exists():
        return path.read_text()
    resource = resources.files("curate.sql").joinpath(f"{name_or_path}.sql")
    if not resource.is_file():
        raise FileNotFoundError(f"no SQL file named {name_or_path!r} under sql/ and no such .sql path")
    return resource.read_text()


def sql_names(folder: str) -> list[str]:
    """Names of the `.sql` files in one folder of sql/ (e.g. 'policies')."""
    root = resources.files("curate.sql").joinpath(folder)
    return sorted(p.name.removesuffix(".sql") for p in root.iterdir() if p.name.endswith(".sql"))


def frame(con: duckdb.DuckDBPyConnection, query: str, params: dict | None = None) -> pl.DataFrame:
    """Run a SQL string with named parameters ($name) bound by DuckDB, never spliced."""
    return con.sql(query, params=params or None).pl()


def run(con: duckdb.DuckDBPyConnection, name_or_path: str | Path, **params: object) -> pl.DataFrame:
    """Run one SQL file from sql/ (by name) or a path, with bound parameters."""
    return frame(con, sql_text(name_or_path), params)
