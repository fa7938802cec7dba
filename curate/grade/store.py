"""Grades in the store: `curate grade` over a data set, and `record_grades` for callers that grade as
they write (inline grading in `curate generate`).

Which verdict `trajectories.correct` holds: the latest `curate grade` run on the data set sets it,
for every trajectory whose question has a gold answer, from its grader's row in `grades`;
`graded_by` names that grader (NULL: the verdict the log came with, also kept as grader `source`).
A run grades only what its grader has not graded yet (`regrade` grades all again), in chunks that
are each one transaction, so a killed run leaves a consistent store and the same command resumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING

import duckdb
import orjson
import pyarrow as pa

from .. import queries
from ..ingest.formats import is_clean
from ..store import Store, storable
from ..versions import code_version
from . import SOURCE, Grade, grade_answers, resolve_grader

if TYPE_CHECKING:
    from ..agent.backends import Backend

CHUNK = 256  # trajectories per transaction (and per judge generation call)


@dataclass
class GradeSummary:
    """What one grading run did to one data set."""

    dataset: str
    grader: str
    grading_run: int
    graded: int
    kept: int
    no_gold: int
    trajectories: int
    correct: int
    clean: int
    with_source: int
    agree_source: int

    def line(self) -> str:
        """One human-readable summary line."""
        share = f"{100 * self.correct / self.trajectories:.1f}%" if self.trajectories else "-"
        agree = (
            f"; agrees with the logs' own verdict on {self.agree_source}/{self.with_source} "
            f"({100 * self.agree_source / self.with_source:.1f}%)"
            if self.with_source
            else ""
        )
        return (
            f"{self.dataset}: {self.grader} graded {self.graded}, kept {self.kept} earlier grades, "
            f"{self.no_gold} without a gold answer left as they were; {self.correct}/{self.trajectories} "
            f"correct ({share}), {self.clean} clean{agree} (grading_run={self.grading_run})"
        )


def grader_version() -> str:
    """The grading code's version (its sources and prompt) and math-verify's."""
    return f"{code_version('grade')} math-verify {version('math-verify')}"


def record_grades(
    con: duckdb.DuckDBPyConnection,
    trajectory_ids: Sequence[str],
    grades: Sequence[Grade],
    grading_run: int | None = None,
) -> None:
    """Write grades (replacing a grader's earlier row) and set those trajectories' correct, clean and
    graded_by; call it inside the transaction that writes the trajectories (or grades them)."""
    if not trajectory_ids:
        return
    rows = pa.table(
        {
            "trajectory_id": list(trajectory_ids),
            "grader": [g.grader for g in grades],
            "correct": [g.correct for g in grades],
            "score": pa.array([g.score for g in grades], pa.float64()),
            "explanation": pa.array([storable(g.explanation) for g in grades], pa.string()),  # a judge's own text
            "grading_run": pa.array([grading_run] * len(grades), pa.int32()),
        }
    )
    _with(con, "_grades_new", rows, "INSERT OR REPLACE INTO grades BY NAME SELECT * FROM _grades_new")
    _apply(con, {t: (g.correct, g.grader) for t, g in zip(trajectory_ids, grades)})


def _with(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table, query: str) -> None:
    con.register(name, table)
    # No `finally`: after a failed (or interrupted) query the transaction is aborted and unregistering
    # would fail too, hiding the real cause; the next register replaces the view anyway.
    con.execute(query).fetchall()
    con.unregister(name)


def _apply(con: duckdb.DuckDBPyConnection, verdicts: dict[str, tuple[bool, str]]) -> None:
    """Set correct / clean / graded_by from {trajectory_id: (correct, grader)} with the one clean rule."""
    if not verdicts:
        return
    flags = queries.frame(con, queries.sql_text("grade/flags"), {"ids": list(verdicts)})
    ids = flags["trajectory_id"].to_list()
    correct = [verdicts[t][0] for t in ids]
    clean = [
        is_clean(c, m, p, s)
        for c, m, p, s in zip(correct, flags["has_messages"], flags["parse_error"], flags["max_steps"])
    ]
    table = pa.table(
        {"trajectory_id": ids, "correct": correct, "clean": clean, "graded_by": [verdicts[t][1] for t in ids]}
    )
    _with(con, "_grade_apply", table, queries.sql_text("grade/apply"))


def grade_store(
    store: Store,
    dataset: str | None = None,
    grader: str = "auto",
    *,
    judge: Backend | None = None,
    regrade: bool = False,
    workers: int = 2,
    timeout: float = 20.0,
    options: dict | None = None,
    progress: bool = True,
) -> list[GradeSummary]:
    """Grade every trajectory's final answer of one data set (or of each) and set correct / clean."""
    datasets = (
        [dataset] if dataset else store.sql("SELECT DISTINCT dataset FROM trajectories ORDER BY 1")["dataset"].to_list()
    )
    if dataset and not store.sql("SELECT 1 FROM trajectories WHERE dataset = $d LIMIT 1", d=dataset).height:
        raise ValueError(f"{store.path}: no trajectories in data set {dataset!r}")
    return [
        _grade_dataset(store, d, grader, judge, regrade, workers, timeout, options or {}, progress) for d in datasets
    ]


def _grader_name(store: Store, dataset: str, grader: str, judge: Backend | None) -> str:
    if grader == "auto":
        golds = store.sql("SELECT gold_answer FROM questions WHERE dataset = $d", d=dataset)["gold_answer"]
        return resolve_grader(golds.to_list())
    if grader == "judge":
        from .judge import judge_name

        if judge is None:
            raise ValueError("the judge grader needs a judge model (--judge-model)")
        return judge_name(judge)
    return grader


def _grade_dataset(
    store: Store,
    dataset: str,
    requested: str,
    judge: Backend | None,
    regrade: bool,
    workers: int,
    timeout: float,
    options: dict,
    progress: bool,
) -> GradeSummary:
    from tqdm import tqdm

    name = _grader_name(store, dataset, requested, judge)
    kind = "judge" if name.startswith("judge:") else name
    with store.transaction() as con:
        con.execute(queries.sql_text("grade/keep_source"), {"dataset": dataset, "source": SOURCE}).fetchall()
        run = con.execute(
            queries.sql_text("grade/register_run"),
            {
                "dataset": dataset,
                "grader": name,
                "requested": requested,
                "code_version": grader_version(),
                "options": orjson.dumps(
                    {**options, "workers": workers, "timeout": timeout, "regrade": regrade}
                ).decode(),
            },
        ).fetchall()[0][0]
    pending = store.run("grade/pending", dataset=dataset, grader=name, regrade=regrade)
    with_gold = store.sql(
        "SELECT count(*) FROM trajectories t JOIN questions q USING (dataset, question_id) "
        "WHERE t.dataset = $d AND nullif(trim(q.gold_answer), '') IS NOT NULL",
        d=dataset,
    ).item()
    bar = tqdm(
        total=pending.height, desc=f"grade {dataset} ({name})", unit=" answers", disable=not progress, leave=False
    )
    for start in range(0, pending.height, CHUNK):
        chunk = pending.slice(start, CHUNK)
        grades = grade_answers(
            kind,
            chunk["question"].to_list(),
            chunk["gold_answer"].to_list(),
            chunk["generated_answer"].to_list(),
            judge=judge,
            workers=workers,
            timeout=timeout,
        )
        with store.transaction() as con:
            record_grades(con, chunk["trajectory_id"].to_list(), grades, run)
        bar.update(chunk.height)
    bar.close()
    with store.transaction() as con:
        stale = queries.frame(con, queries.sql_text("grade/stale"), {"dataset": dataset, "grader": name})
        _apply(con, {t: (c, name) for t, c in stale.iter_rows()})
        counts = queries.frame(
            con, queries.sql_text("grade/counts"), {"dataset": dataset, "grader": name, "source": SOURCE}
        ).row(0, named=True)
        con.execute(
            queries.sql_text("grade/finish_run"),
            {
                "grading_run": run,
                "graded": pending.height,
                "kept": with_gold - pending.height,
                "no_gold": counts["no_gold"],
                "correct": counts["correct"],
            },
        ).fetchall()
    return GradeSummary(dataset, name, run, pending.height, with_gold - pending.height, **counts)
