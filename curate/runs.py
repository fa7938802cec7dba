"""Pick a scoring run: `--run ID`, or `--student PATH` meaning its latest finished run."""

from __future__ import annotations

import duckdb

from . import queries
from .models import student_key


def resolve_run(con: duckdb.DuckDBPyConnection, run_id: str | None = None, student: str | None = None) -> str:
    """The run id to read scores from; a clear error when there is none."""
    if run_id:
        if queries.frame(con, "SELECT 1 FROM scoring_runs WHERE run_id = $r", {"r": run_id}).is_empty():
            raise ValueError(f'no scoring run {run_id!r} in this store (see: curate sql "SELECT * FROM scoring_runs")')
        return run_id
    if student:
        found = queries.run(con, "runs/latest", student=student_key(student))
        if found.is_empty():
            raise ValueError(
                f"no finished scoring run for student {student!r}: run `curate score --student {student}` first"
            )
        return found.item()
    finished = queries.frame(con, "SELECT run_id FROM scoring_runs WHERE finished_at IS NOT NULL")
    if finished.height == 1:
        return finished.item()
    raise ValueError("several (or no) scoring runs in this store: choose one with --run ID or --student PATH")
