"""Print or write a Polars frame as a table, CSV, JSON or parquet (the CLI's --format/--out)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

OUTPUT_FORMATS = ("table", "csv", "json", "parquet")


@contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """Name `path` in an OSError raised while it is written: a failed write (a full disk) names no file."""
    try:
        yield
    except OSError as error:
        if error.filename is not None or error.errno is None:
            raise
        raise type(error)(error.errno, error.strerror or str(error), str(path)) from error


def format_table(frame: pl.DataFrame, max_rows: int = 50) -> str:
    """A readable table: every column, long text cut at 60 characters, at most max_rows rows."""
    with pl.Config(
        tbl_rows=max_rows,
        tbl_cols=-1,
        fmt_str_lengths=60,
        tbl_width_chars=240,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
    ):
        return str(frame)


def write_frame(frame: pl.DataFrame, fmt: str = "table", out: str | Path | None = None, max_rows: int = 50) -> None:
    """Write the frame in fmt to out (a path) or stdout; parquet needs a path."""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r} (known: {', '.join(OUTPUT_FORMATS)})")
    if fmt == "parquet":
        if out is None:
            raise ValueError("--format parquet needs --out PATH")
        frame.write_parquet(out)
        return
    if fmt == "table":
        text = format_table(frame, max_rows) + "\n"
    elif fmt == "csv":
        text = frame.write_csv()
    else:
        text = frame.write_json() + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        Path(out).write_text(text)
