"""Failures a user can act on, each said in one line: what went wrong, with which file, what to do.

`curate.cli.main` prints `one_line(error, args)`; an error this module does not know is a bug,
and keeps its traceback. Stores are opened through `curate.store.connect`, which already turns
DuckDB's open errors into `StoreError`s; this maps what happens later: DuckDB errors of a query,
operating-system errors (permissions, a full disk, a file in the way), and our own ValueError /
RuntimeError messages.
"""

from __future__ import annotations

import argparse
import errno

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
NO_SPACE_TEXT = "No space left on device"
OS_HINTS = {
    errno.EACCES: "check its permissions (and its folder's), or use another path",
    errno.EPERM: "check its permissions (and its folder's), or use another path",
    errno.EROFS: "the file system is read-only: use a path on a writable one",
    errno.EEXIST: "remove it or choose another path",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "it is a folder: give a file",
    errno.ELOOP: "a symbolic link loop: fix the link",
}
# DuckDB query errors (first line of the message) -> what to do.
DUCKDB_HINTS = (
    ("read-only mode", "this command opened the store read-only (curate sql: add --write to change it)"),
    ("Values were not provided for the following", "bind each parameter with --param NAME=VALUE"),
    ("excess parameters", "drop that --param or use $NAME for it in the SQL"),
    ("Parameter/argument count mismatch", "the SQL uses no $NAME parameter: drop the --param options"),
    ("Catalog Error", 'list the tables with: curate sql "SHOW TABLES"'),
    ("Parser Error", "check the SQL"),
)


def flatten(text: str) -> str:
    """A message on one line: DuckDB's context after the first blank line (LINE 1: ... ^^^) is dropped."""
    head = text.strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in head.splitlines() if line.strip())


def no_space(where: str | None) -> str:
    """A full disk, named by the file being written (or the store) where known."""
    return (
        f"{where + ': ' if where else ''}no space left on the device; free some space or write elsewhere, "
        "then run the same command again (what was being written is not kept half-done)"
    )


def os_error(error: OSError) -> str:
    """An operating-system error, named by its file (curate names the file of a failed write)."""
    text = flatten(str(error))
    if error.filename is None:  # raised with its own message, by curate or a library
        return text
    where = str(error.filename) + ("" if error.filename2 is None else f" -> {error.filename2}")
    hint = OS_HINTS.get(error.errno) if error.errno is not None else None
    return f"{where}: {error.strerror or text}" + (f"; {hint}" if hint else "")


def duckdb_error(error: Exception, db: str | None) -> str:
    """A DuckDB error of a query, named by the store it ran on."""
    text = flatten(str(error))
    where = db if db is not None else "the store"
    hint = next((h for pattern, h in DUCKDB_HINTS if pattern in text), None)
    return f"{where}: {text}" + (f"; {hint}" if hint else "")


def one_line(error: BaseException, args: argparse.Namespace) -> str | None:
    """The one line to print for an error a user can act on; None for a bug (show the traceback)."""
    import duckdb

    text, db = flatten(str(error)), getattr(args, "db", None)
    # A full disk, whoever reports it (an OSError, DuckDB, polars' parquet writer): named by the file
    # being written when the error carries it, else by the store the command works next to.
    if getattr(error, "errno", None) in NO_SPACE or NO_SPACE_TEXT in text:
        filename = getattr(error, "filename", None)
        return no_space(str(filename) if filename is not None else db)
    if isinstance(error, OSError):
        return os_error(error)
    if isinstance(error, duckdb.Error):
        return duckdb_error(error, db)
    if isinstance(error, (ValueError, RuntimeError)):
        return text or type(error).__name__
    return None
