"""Writing a generation run's results: finished runs graded and written a few at a time (`Writer`),
and the first thoughts of its questions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..store import Store, storable
from .backends import Backend, GenRequest
from .config import GenerateConfig
from .loop import AgentRun, derive_seed
from .prompts import Prompts
from .questions import Question
from .records import log_record, write_records

WRITE_SECONDS = 30.0  # finished runs wait at most this long (or write_every runs) before they are written


class Writer:
    """Grades finished runs and writes them a few at a time, each batch one short transaction."""

    def __init__(self, db: str | Path, cfg: GenerateConfig, run_id: str, model_id: str) -> None:
        from ..grade import resolve_grader  # noqa: F401  (grading needs the package; fail early)

        self.db, self.cfg, self.run_id, self.model_id = db, cfg, run_id, model_id
        with Store(db, read_only=True) as store:
            self.grader = store.sql("SELECT grader FROM generation_runs WHERE generation_run = $r", r=run_id).item()
        self.pending: list[AgentRun] = []
        self.last = time.monotonic()

    def add(self, run: AgentRun) -> None:
        """Queue a finished run; write the queue when it is long or old enough."""
        self.pending.append(run)
        if len(self.pending) >= self.cfg.write_every or time.monotonic() - self.last >= WRITE_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Grade and write every queued run in one transaction."""
        from ..grade import grade_answers
        from ..grade.store import record_grades

        runs, self.pending, self.last = self.pending, [], time.monotonic()
        if not runs:
            return
        questions = [run.task.key[0] for run in runs]
        grades = grade_answers(
            self.grader, [q.text for q in questions], [q.gold for q in questions], [run.final_answer for run in runs]
        )
        records = [
            (log_record(run, q, self.model_id, g.correct, self._provenance(run)), q.position)
            for run, q, g in zip(runs, questions, grades)
        ]
        with Store(self.db) as store, store.transaction() as con:
            ids = write_records(con, self.cfg.dataset, str(self.cfg.questions), records)
            graded = [(t, g) for t, g, q in zip(ids, grades, questions) if q.gold is not None]
            record_grades(con, [t for t, _ in graded], [g for _, g in graded])

    def _provenance(self, run: AgentRun) -> dict[str, Any]:
        return {
            "sample_idx": run.task.key[1],
            "seed": run.task.seed,
            "steps": run.steps,
            "generated_tokens": run.tokens,
            "stop_reason": run.stop_reason,
            "first_thought": run.task.prefix or None,
            "generation_run": self.run_id,
        }


def stored_first_thoughts(db: str | Path, run_id: str) -> dict[str, str]:
    """The first thoughts a generation run has stored, by question id."""
    with Store(db, read_only=True) as store:
        sql = "SELECT question_id, prefix FROM generation_prefixes WHERE generation_run = $r"
        return dict(store.sql(sql, r=run_id).iter_rows())


def first_thought_rows(
    cfg: GenerateConfig, run_id: str, prompts: Prompts, backend: Backend, questions: Sequence[Question]
) -> list[tuple[str, str, str, int]]:
    """generation_prefixes rows of these questions, from one batched call."""
    # Greedy, stopped at the first blank line: the same first paragraph as the whole answer's.
    requests = [
        GenRequest(
            ({"role": "system", "content": prompts.first_thought}, {"role": "user", "content": q.text}),
            cfg.max_new_tokens,
            0.0,
            1.0,
            derive_seed(cfg.seed, q.id, "first_thought"),
            ("\n\n",),
        )
        for q in questions
    ]
    done = backend.generate(requests)
    return [
        (run_id, q.id, storable("Thought: " + c.text.split("\n\n")[0] + "\n\n"), c.tokens)
        for q, c in zip(questions, done)
    ]


def write_first_thoughts(db: str | Path, rows: Sequence[tuple[str, str, str, int]]) -> None:
    """Store first thoughts (one transaction)."""
    if rows:
        with Store(db) as store, store.transaction() as con:
            con.executemany("INSERT INTO generation_prefixes VALUES ($1, $2, $3, $4)", rows)
