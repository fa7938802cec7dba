"""The DuckDB trajectory store: open, create, check the schema version."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from . import queries

SCHEMA_VERSION = 2
# Stores from this version on are upgraded in place: sql/schema.sql is idempotent (CREATE ... IF NOT
# EXISTS, ALTER TABLE ... ADD COLUMN IF NOT EXISTS), so running it again adds what is missing.
UPGRADABLE_FROM = 1
DEFAULT_DB = "curate.duckdb"


class SchemaVersionError(RuntimeError):
    """The store was written by another schema version."""


class Store:
    """One DuckDB file holding questions, trajectories, messages, scores and selections."""

    def __init__(self, path: str | Path = DEFAULT_DB, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no store here (create one with `curate ingest`)")
        self.con = duckdb.connect(str(self.path), read_only=read_only)
        if read_only:
            self._check_version()
        else:
            self._create_or_check()

    def _stored_version(self) -> int | None:
        has_meta = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'"
        ).fetchall()[0][0]
        if not has_meta:
            return None
        rows = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        if not rows:
            return None
        try:
            return int(rows[0][0])
        except ValueError:
            raise SchemaVersionError(
                f"{self.path}: meta.schema_version is {rows[0][0]!r}, not a version number; "
                "this is not a store curate wrote"
            ) from None

    def _check_version(self) -> None:
        version = self._stored_version()
        if version == SCHEMA_VERSION:
            return
        found = "no schema version" if version is None else f"schema version {version}"
        if version is not None and UPGRADABLE_FROM <= version < SCHEMA_VERSION:
            hint = ("open it once for writing to upgrade it in place "
                    f"(any writing command does, e.g. curate sql --db {self.path} --write 'SELECT 1')")
        else:
            hint = "re-ingest into a new store or use the curate release that wrote it"
        raise SchemaVersionError(f"{self.path}: store has {found}, this curate reads version {SCHEMA_VERSION}; {hint}")

    def _create_or_check(self) -> None:
        version = self._stored_version()
        if version is None:
            tables = self.con.execute("SELECT count(*) FROM information_schema.tables").fetchall()[0][0]
            if tables:
                self._check_version()
        elif not UPGRADABLE_FROM <= version <= SCHEMA_VERSION:
            self._check_version()
            return
        # Every writable open runs the schema file: it only adds what is missing, so a new store, an
        # older one, and one written before a table of this version was added all end up complete.
        with self.transaction():
            self.con.execute(queries.sql_text("schema"))
            self.con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', $v)", {"v": str(SCHEMA_VERSION)}
            )

    def transaction(self) -> "_Transaction":
        """A context manager: commit on success, roll back on any exception."""
        return _Transaction(self.con)

    def sql(self, query: str, **params: object) -> pl.DataFrame:
        """Run a SQL string with named parameters and return a Polars frame."""
        return queries.frame(self.con, query, params)

    def run(self, name_or_path: str | Path, **params: object) -> pl.DataFrame:
        """Run a `.sql` file from sql/ (by name) or a path, with bound parameters."""
        return queries.run(self.con, name_or_path, **params)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transaction:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.con.execute("BEGIN TRANSACTION")
        return self.con

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        self.con.execute("ROLLBACK" if exc_type else "COMMIT")
