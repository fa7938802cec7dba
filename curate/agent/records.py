"""Agent runs as agent-distillation log records, and into the store through ingest's own parser.

A finished run becomes the record the release's scripts write (smolagents' `log_data.messages`,
`generated_answer`, `score`, ...), and `formats.parse` turns that record into rows exactly as
`curate ingest` would: the error flags, tool-call counts and the clean rule are ingest's by
construction, and `--log-out` files ingest back into the same trajectories.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb

from ..ingest import formats
from ..ingest.job import _Batch
from ..store import storable
from .loop import AgentRun
from .questions import Question

# Keys of a log record that carry the agent runtime's provenance (ingest ignores them).
PROVENANCE = ("sample_idx", "seed", "steps", "generated_tokens", "stop_reason", "first_thought", "generation_run")


def log_record(
    run: AgentRun, question: Question, model_id: str, correct: bool | None, provenance: dict[str, Any]
) -> dict[str, Any]:
    """The agent-distillation log record of a run (`score` 1/0 once graded)."""
    return {
        "question_id": question.id,
        "question": question.text,
        "true_answer": question.gold,
        "generated_answer": run.final_answer,
        "score": None if correct is None else int(correct),
        "model_id": model_id,
        "log_data": {
            "messages": [{"role": role, "content": [{"type": "text", "text": text}]} for role, text in run.messages],
            "metadata": {
                "total_steps": run.steps,
                "final_answer": run.final_answer,
                "success": run.stop_reason == "final_answer",
                "performance": {"total_duration": (run.finished or run.started) - run.started},
            },
        },
        **provenance,
    }


def trajectory_id(dataset: str, question_id: str, sample_idx: int) -> str:
    """The id of a generated trajectory: one per (data set, question, sample), so a rerun cannot duplicate it."""
    return hashlib.blake2b(f"agent\0{dataset}\0{question_id}\0{sample_idx}".encode(), digest_size=10).hexdigest()


def write_records(
    con: duckdb.DuckDBPyConnection, dataset: str, source_file: str, records: Sequence[tuple[dict[str, Any], int]]
) -> list[str]:
    """Insert (record, source line) pairs as trajectories (provenance columns from the record's
    PROVENANCE keys) and their messages; the trajectory ids, in order. Text is stored as `storable`
    makes it; a failure names the runs it was writing."""
    records = [(_storable(record), line) for record, line in records]
    try:
        return _write(con, dataset, source_file, records)
    except Exception as error:
        runs = ", ".join(f"question {r['question_id']} sample {r['sample_idx']}" for r, _ in records)
        cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RuntimeError(
            f"could not write the runs of data set {dataset!r} ({runs}) into the store: {cause}"
        ) from error


def _write(
    con: duckdb.DuckDBPyConnection, dataset: str, source_file: str, records: Sequence[tuple[dict[str, Any], int]]
) -> list[str]:
    batch, ids = _Batch(), []
    cache: dict[str, str] = {}
    for record, line in records:
        parsed = formats.parse(record, formats.SMOLAGENTS, cache)
        row, messages = parsed.trajectory()
        tid = trajectory_id(dataset, parsed.question_id, record["sample_idx"])
        batch.add_trajectory(
            {
                "trajectory_id": tid,
                "question_id": parsed.question_id,
                "source_line": line,
                **row,
                **{k: record[k] for k in PROVENANCE},
            },
            messages,
        )
        ids.append(tid)
    batch.write(con, {"dataset": dataset, "ingest_id": 0, "source_file": source_file})
    return ids


def _storable(value: Any) -> Any:
    """A record with every string in it `storable`."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def stored_records(con: duckdb.DuckDBPyConnection, dataset: str) -> Iterator[dict[str, Any]]:
    """The log records of a data set's generated trajectories, in question then sample order."""
    from ..queries import run

    frame = run(con, "generate/log_records", dataset=dataset)
    for row in frame.iter_rows(named=True):
        messages = [{"role": r, "content": [{"type": "text", "text": t}]} for r, t in zip(row["roles"], row["texts"])]
        yield {
            "question_id": row["question_id"],
            "question": row["question"],
            "true_answer": row["gold_answer"],
            "generated_answer": row["generated_answer"],
            "score": int(row["correct"]),
            "model_id": row["teacher_model"],
            "log_data": {"messages": messages},
            **{k: row[k] for k in PROVENANCE},
        }
