"""The DuckDB trajectory store: open, create, check the schema version."""

from __future__ import annotations

import fcntl
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import duckdb
import polars as pl

from . import queries

SCHEMA_VERSION = 3
# Stores from this version on are upgraded in place: sql/schema.sql is idempotent (CREATE ... IF NOT
# EXISTS, ALTER TABLE ... ADD COLUMN IF NOT EXISTS), so running it again adds what is missing.
UPGRADABLE_FROM = 1
DEFAULT_DB = "curate.duckdb"
# A store never needs an extension, and opening a foreign file (a SQLite database) must not make
# DuckDB download one from the network.
DUCKDB_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
SQLITE_MAGIC = b"SQLite format 3\x00"
DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file
LOCK_WAIT_S = 30.0  # how long an open waits for another process's lock on the store ($CURATE_LOCK_WAIT_S)
NOTE_AFTER_S = 1.0  # a wait this long is said on stderr (another command's short write is not worth a line)
# DuckDB adds this to a lock error when it could set a read lock: every holder is a reader.
READERS_ONLY = "you would be able to open this database in read-only mode"


def storable(text: str) -> str:
    """`text` as the store can hold it: each lone surrogate (a model's output can hold one, UTF-8
    cannot) replaced by U+FFFD, and a surrogate pair joined into its character."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


class StoreError(RuntimeError):
    """A --db that cannot be opened as a store; the message names it and says what to do."""


class StoreLockedError(StoreError):
    """Another process holds the store's file lock."""


class SchemaVersionError(StoreError):
    """The store was written by another schema version."""


def _not_a_store(path: Path, existing: bool) -> Exception | None:
    """Why `path` cannot be a store (`existing`: or a new one), found before DuckDB tries (its
    messages name no remedy)."""
    if path.is_dir():
        return StoreError(f"{path}: a folder, not a store file; give --db a file, e.g. {path / DEFAULT_DB}")
    if not path.exists():
        if existing:
            return FileNotFoundError(f"{path}: no store here (create one with `curate ingest`)")
        if not path.parent.is_dir():
            return StoreError(f"{path}: folder {path.parent} does not exist; create it or give --db another path")
        return None
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as error:
        return StoreError(f"{path}: cannot read it ({error.strerror}); check its permissions or give --db another path")
    if not head:
        return StoreError(f"{path}: an empty file, not a DuckDB store; remove it or give --db another path")
    if head.startswith(SQLITE_MAGIC):
        return StoreError(f"{path}: a SQLite database, not a DuckDB store; give --db a store curate wrote")
    if head[8:12] != DUCKDB_MAGIC:
        return StoreError(f"{path}: not a DuckDB store; give --db a store curate wrote, or a new file name")
    return None


@dataclass(frozen=True)
class _Holder:
    """The process holding the lock an open could not set, as DuckDB's error names it."""

    pid: str | None
    reader: bool

    def named(self) -> str:
        return f" (PID {self.pid})" if self.pid else ""


def _holder(text: str, read_only: bool) -> _Holder | None:
    """Who holds the store (None: the error is not about a lock). A reader only ever blocks a writer,
    and then DuckDB's error says a read-only open would work."""
    if "Could not set lock" not in text:
        return None
    pid = re.search(r"\(PID (\d+)\)", text)
    return _Holder(pid.group(1) if pid else None, not read_only and READERS_ONLY in text)


def lock_wait() -> float:
    """Seconds an open waits for another process's lock: $CURATE_LOCK_WAIT_S, else LOCK_WAIT_S."""
    text = os.environ.get("CURATE_LOCK_WAIT_S")
    if text is None:
        return LOCK_WAIT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"CURATE_LOCK_WAIT_S={text!r}: expected a number of seconds, 0 or more")
    return seconds


def _note_wait(path: Path, holder: _Holder, wait: float) -> None:
    from tqdm import tqdm

    # Said while it happens (above any progress bar): a command that stands still must say why.
    kind = "reader" if holder.reader else "writer"
    tqdm.write(
        f"curate: {path}: a {kind}{holder.named()} has this store open; waiting up to {wait:g} s for it",
        file=sys.stderr,
    )


def _locked(path: Path, holder: _Holder, wait: float) -> StoreLockedError:
    if holder.reader:
        return StoreLockedError(
            f"{path}: another process{holder.named()} has this store open read-only, and writing "
            f"needs it alone; waited {wait:g} s; close that reader (a DuckDB client, a curate sql "
            "still running), then run the same command again"
        )
    return StoreLockedError(
        f"{path}: another process{holder.named()} has this store open for writing; waited "
        f"{wait:g} s; wait for it to finish (one writer at a time), then run the same command again"
    )


def _open_failed(path: Path, read_only: bool, error: duckdb.Error) -> StoreError:
    text = str(error)
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    if "No space left" in text:
        return StoreError(f"{path}: no space left on the device ({first}); free some space or give --db another path")
    mode = "reading" if read_only else "writing"
    return StoreError(
        f"{path}: cannot open the store for {mode} ({first}); check the file and its folder's "
        "permissions, or give --db another path"
    )


def connect(
    path: str | Path, read_only: bool = False, create: bool = True, wait: float | None = None
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB store file with extension auto-install and auto-load off (a new one only
    when writing and `create`).

    Another process's lock is waited for, up to `wait` (default `lock_wait()`) seconds with backoff (a wait over
    NOTE_AFTER_S is said on stderr, naming the holder as a reader or a writer). Every reason it cannot
    be opened (a folder, a missing folder, a text, empty or SQLite file, a lock still held, permissions)
    is raised as one StoreError naming the path; a store that must exist and does not is a
    FileNotFoundError.
    """
    path = Path(path)
    if str(path) != ":memory:" and (problem := _not_a_store(path, read_only or not create)) is not None:
        raise problem
    wait = lock_wait() if wait is None else wait
    started, delay, noted = time.monotonic(), 0.05, False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=DUCKDB_CONFIG)
        except duckdb.Error as error:
            holder, waited = _holder(str(error), read_only), time.monotonic() - started
            if holder is None:
                raise _open_failed(path, read_only, error) from error
            if waited + delay > wait:
                raise _locked(path, holder, wait) from error
        if not noted and waited >= NOTE_AFTER_S:
            _note_wait(path, holder, wait)
            noted = True
        time.sleep(delay)
        delay = min(2 * delay, 1.0)


@contextmanager
def claimed(db: str | Path, name: str, what: str) -> Iterator[None]:
    """Hold the lock file `DB.NAME.lock` while inside, so that a job on the store ("generation run ID
    is being generated") runs in one process at a time; another holder is a StoreLockedError naming
    its PID. A --db that can be no store is refused first, as `connect` would. The kernel frees the
    lock when its holder ends, even by kill -9; the file goes on the way out."""
    if (problem := _not_a_store(Path(db), existing=False)) is not None:
        raise problem
    lock = Path(f"{db}.{name}.lock")
    handle = _lock_file(lock, f"{db}: {what}")
    try:
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        lock.unlink(missing_ok=True)
        handle.close()


def _lock_file(lock: Path, what: str) -> TextIO:
    while True:
        handle = lock.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip()
            handle.close()
            raise StoreLockedError(
                f"{what} by another process{f' (PID {pid})' if pid else ''}; wait for it to "
                "finish, or stop it, then run the same command again"
            ) from None
        try:
            current = os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:
            return handle
        handle.close()  # its holder finished and removed it after this process opened it: lock the new one


class Store:
    """One DuckDB file holding questions, trajectories, messages, scores and selections."""

    def __init__(
        self, path: str | Path = DEFAULT_DB, read_only: bool = False, create: bool = True, wait: float | None = None
    ) -> None:
        self.path = Path(path)
        self.con = connect(self.path, read_only, create, wait)
        try:
            if read_only:
                self._check_version()
            else:
                self._create_or_check()
        except BaseException:
            self.con.close()  # a refused store is not left open (and locked)
            raise

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
            hint = (
                "open it once for writing to upgrade it in place "
                f"(any writing command does, e.g. curate sql --db {self.path} --write 'SELECT 1')"
            )
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
            self.con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', $v)", {"v": str(SCHEMA_VERSION)})

    def transaction(self) -> _Transaction:
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

    def __enter__(self) -> Store:
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
