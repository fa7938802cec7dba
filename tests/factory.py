"""Build small stores row by row for tests: trajectories (with messages) and per-turn scores.

Only the columns a test cares about need to be given; the rest get defaults that keep the store
consistent (questions exist, `clean` follows the DESIGN rule, counts follow the messages).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import polars as pl

from curate.ingest.formats import is_clean
from curate.render import chat_messages
from curate.store import Store

DEFAULT_MESSAGES = [
    ("system", "You solve tasks with code."),
    ("user", "New task:\nWhat is 2+2?"),
    ("assistant", "Thought: add.\nCode:\n```py\nfinal_answer(2+2)\n```<end_code>"),
]


def new_store(path: str | Path = ":memory:") -> Store:
    return Store(path)


def add_trajectories(store: Store, rows: Iterable[dict]) -> list[str]:
    """Insert trajectories (and their questions and messages); returns their ids in order.

    Keys: trajectory_id, dataset, question_id, sample_idx (default: next free for the question),
    teacher_model, correct, parse_error, max_steps, exec_error, messages [(role, text)],
    question_text, gold_answer, tool_calls, assistant_chars.
    """
    ids = []
    con = store.con
    for i, row in enumerate(rows):
        dataset = row.get("dataset", "ds")
        qid = row.get("question_id", "q0")
        messages: Sequence[tuple[str, str]] = row.get("messages", DEFAULT_MESSAGES)
        text = row.get("question_text", f"Question {qid}?")
        con.execute(
            "INSERT INTO questions VALUES ($d, $q, $t, $g, $w, NULL) ON CONFLICT DO NOTHING",
            {"d": dataset, "q": qid, "t": text, "g": row.get("gold_answer", "4"), "w": len(text.split())},
        )
        if "sample_idx" in row:
            sample_idx = row["sample_idx"]
        else:
            sample_idx = con.execute(
                "SELECT coalesce(max(sample_idx) + 1, 0) FROM trajectories WHERE dataset = $d AND question_id = $q",
                {"d": dataset, "q": qid},
            ).fetchall()[0][0]
        tid = row.get("trajectory_id") or f"{dataset}:{qid}:{sample_idx}"
        chat = chat_messages(messages)
        assistant = [m["content"] for m in chat if m["role"] == "assistant"]
        correct = row.get("correct", True)
        parse_error, max_steps = row.get("parse_error", False), row.get("max_steps", False)
        con.execute(
            "INSERT INTO trajectories (trajectory_id, dataset, question_id, sample_idx, teacher_model, correct,"
            " generated_answer, parse_error, max_steps, exec_error, clean, assistant_turns, tool_calls,"
            " assistant_chars, profile, content_hash, ingest_id, source_file, source_line)"
            " VALUES ($id, $d, $q, $s, $model, $correct, $answer, $pe, $ms, $ee,"
            " $clean, $turns, $tools, $chars, 'smolagents', $hash, 0, 'factory', $line)",
            {
                "id": tid,
                "d": dataset,
                "q": qid,
                "s": sample_idx,
                "model": row.get("teacher_model", "teacher"),
                "correct": correct,
                "answer": row.get("generated_answer", "4"),
                "pe": parse_error,
                "ms": max_steps,
                "ee": row.get("exec_error", False),
                "clean": is_clean(correct, bool(messages), parse_error, max_steps),
                "turns": len(assistant),
                "tools": row.get("tool_calls", sum(a.count("Code:") for a in assistant)),
                "chars": row.get("assistant_chars", sum(len(a) for a in assistant)),
                "hash": hashlib.sha256(json.dumps(messages).encode()).hexdigest()[:16],
                "line": i + 1,
            },
        )
        con.executemany(
            "INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
            [(tid, p, role, role, text) for p, (role, text) in enumerate(messages)],
        )
        ids.append(tid)
    return ids


def add_scores(
    store: Store,
    run_id: str,
    turn_means: dict[str, Sequence[float]],
    student: str = "tiny",
    tokens_per_turn: int = 10,
    truncated: Iterable[str] = (),
    rank_sums: dict[str, Sequence[int]] | None = None,
    alone_means: dict[str, Sequence[float]] | None = None,
    sequences: dict[str, str] | None = None,
) -> None:
    """Insert a finished scoring run whose trajectories have the given per-turn NLL means; with
    `rank_sums`, their turns' rank sums (clip 100; NULL for a trajectory not given); with
    `alone_means`, IFD's alone-pass NLL means per turn. `sequences` gives trajectories a shared
    sequence_hash (default: their own id), so identical samples share alone rows."""
    truncated = set(truncated)
    rank_sums = rank_sums or {}
    sequences = sequences or {}
    con = store.con
    con.execute(
        "INSERT INTO scoring_runs VALUES ($r, $s, 'w', 't', 'transformers', 'float32', 1024, true,"
        " 'test', '{}', $now, $now, $n, $tok)",
        {
            "r": run_id,
            "s": student,
            "now": datetime(2026, 1, 1),
            "n": len(turn_means),
            "tok": tokens_per_turn * sum(len(v) for v in turn_means.values()),
        },
    )
    turns = pl.DataFrame(
        [
            (
                run_id,
                tid,
                m,
                tokens_per_turn,
                nll * tokens_per_turn,
                nll,
                rank_sums[tid][m] if tid in rank_sums else None,
                100 if tid in rank_sums else None,
            )
            for tid, means in turn_means.items()
            for m, nll in enumerate(means)
        ],
        schema={
            "run_id": pl.Utf8,
            "trajectory_id": pl.Utf8,
            "turn": pl.Int32,
            "tokens": pl.Int32,
            "nll_sum": pl.Float64,
            "nll_mean": pl.Float64,
            "rank_sum": pl.Int64,
            "rank_clip": pl.Int32,
        },
        orient="row",
    )
    per_trajectory = pl.DataFrame(
        [
            (run_id, tid, tokens_per_turn * len(means), tid in truncated, sequences.get(tid, tid))
            for tid, means in turn_means.items()
        ],
        schema=["run_id", "trajectory_id", "tokens", "truncated", "sequence_hash"],
        orient="row",
    )
    alone = pl.DataFrame(
        [
            (run_id, sequences.get(tid, tid), m, tokens_per_turn, nll * tokens_per_turn, nll)
            for tid, means in (alone_means or {}).items()
            for m, nll in enumerate(means)
        ],
        schema=["run_id", "sequence_hash", "turn", "tokens", "nll_sum", "nll_mean"],
        orient="row",
    )
    # Bulk inserts through Arrow: row-by-row executemany takes tens of seconds on a file store.
    con.register("new_turns", turns.to_arrow())
    con.register("new_trajectories", per_trajectory.to_arrow())
    con.register("new_alone", alone.to_arrow())
    con.execute("INSERT INTO turn_scores BY NAME SELECT * FROM new_turns")
    con.execute("INSERT INTO trajectory_scores BY NAME SELECT * FROM new_trajectories")
    con.execute("INSERT INTO turn_alone_scores BY NAME SELECT * FROM new_alone ON CONFLICT DO NOTHING")
    for name in ("new_turns", "new_trajectories", "new_alone"):
        con.unregister(name)
