"""Per data set statistics of a store (sql/stats.sql) and their printed table."""

from __future__ import annotations

import polars as pl

from .output import format_table
from .store import Store

TABLE_COLUMNS = (
    "dataset",
    "questions",
    "trajectories",
    "failed_runs",
    "correct_pct",
    "clean_pct",
    "parse_error",
    "max_steps",
    "exec_error",
    "mean_turns",
    "mean_tool_calls",
    "rejects",
)


def stats(store: Store) -> pl.DataFrame:
    """One row per data set: counts, flags, sums of turns and tool calls, percentages and means."""
    return store.run("stats")


def run_summary(store: Store) -> pl.DataFrame:
    """One row per scoring run: trajectories, truncated, with no turn left, scored turn by turn."""
    return store.run("runs/summary")


def stats_table(frame: pl.DataFrame) -> str:
    """The printed form: counts, correct %, clean %, flags, mean turns and tool calls."""
    if frame.is_empty():
        return "the store holds no data sets yet (curate ingest ...)"
    return format_table(frame.select(TABLE_COLUMNS), max_rows=-1)
