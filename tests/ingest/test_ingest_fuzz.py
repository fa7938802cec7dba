"""Property-based fuzzing of ingest (Hypothesis): valid records of every format, randomly broken at the
value, line and file level, must never make ingest raise, and must leave a store whose every input line
is exactly one trajectory, failed run or reject (with a reason naming a field), whose ingest_runs counts
match its rows, and which a second ingest (or a retry of the rejects) does not change.

CI runs a bounded, derandomised number of examples; CURATE_FUZZ_EXAMPLES=N runs N random ones.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_ingest import FAILED, RUNS, record

from curate.ingest import IngestOptions, formats, ingest
from curate.store import Store

EXAMPLES = int(os.environ.get("CURATE_FUZZ_EXAMPLES", "0"))
MAX_RECORD_BYTES = 40_000
OPTIONS = IngestOptions(progress=False, max_record_bytes=MAX_RECORD_BYTES, batch_records=3)
TABLES = ("questions", "trajectories", "messages", "failed_runs", "ingest_runs", "ingest_rejects")


def chat(qid: str, correct: bool) -> dict:
    """A chat-format record with a tool turn."""
    return {
        "question_id": qid,
        "question": f"Question {qid}?",
        "correct": correct,
        "model": "m",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": f"Question {qid}?"},
            {"role": "assistant", "content": "Code:\n```py\nprint(1)\n```<end_code>"},
            {"role": "tool", "content": "1"},
            {"role": "assistant", "content": "It is 1."},
        ],
    }


def mint(task_id: int, success: bool) -> dict:
    """A MINT record (CodeAct): few-shot prompt ending in the task, <execute> and <solution> turns."""
    prompt = f"What is {task_id} + 1?"
    return {
        "model": "CodeActAgent",
        "task": {
            "task_name": "reasoning",
            "task_id": task_id,
            "prompt": prompt,
            "reference": str(task_id + 1),
            "metadata": {"level": 1},
        },
        "state": {
            "history": [
                {"role": "user", "content": f"Solve with code.\nTask:\n{prompt}"},
                {"role": "assistant", "content": f"<execute>print({task_id} + 1)</execute>"},
                {"role": "user", "content": f"Observation:\n{task_id + 1}"},
                {"role": "assistant", "content": f"<solution>{task_id + 1}</solution>"},
            ],
            "success": success,
            "terminate_reason": "max_steps" if not success else "done",
            "error": None,
        },
    }


# Valid records per format, and the format a file of them is read with.
VALID = {
    "smolagents": [record(r) for r in RUNS] + [FAILED],
    "smolagents-string": [record(replace(r, log_as_string=True)) for r in RUNS],
    "chat": [chat("a", True), chat("a", False), chat("b", True)],
    "mint": [mint(1, True), mint(1, False), mint(2, True)],
}
READ_AS = {"smolagents": "smolagents", "smolagents-string": "smolagents", "chat": "chat", "mint": "mint"}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["", "  ", "MessageRole.WIZARD", "{", "[1, 2]", "42"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
odd_chars = st.sampled_from(["\x00", "\x01", "\x1f", "\x7f", "\u2028", "\ufeff", "\ud800", "é", "\U0001f600"])


def places(value: Any, path: tuple = ()) -> list[tuple]:
    """Every position in a JSON value (the root included)."""
    found = [path]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += places(inner, (*path, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found += places(inner, (*path, i))
    return found


def at(value: Any, path: tuple) -> Any:
    for step in path:
        value = value[step]
    return value


def mutate_value(data: st.DataObject, rec: Any) -> Any:
    """One change to a record's value: drop, retype, nest, grow or sprinkle odd characters."""
    path = data.draw(st.sampled_from(places(rec)), label="path")
    kind = data.draw(st.sampled_from(["drop", "retype", "nest", "huge", "chars"]), label="mutation")
    event(f"mutation: {kind}")
    if not path:
        return data.draw(json_values) if kind in ("drop", "retype") else rec
    parent, last = at(rec, path[:-1]), path[-1]
    if kind == "drop":
        del parent[last]
    elif kind == "retype":
        parent[last] = data.draw(json_values)
    elif kind == "nest":
        # A marker that line_bytes replaces by the nested JSON text (json.dumps itself stops at ~1000).
        parent[last] = f"@@nest{data.draw(st.sampled_from([3, 254, 255, 300, 1100]), label='depth')}@@"
    elif kind == "huge":
        parent[last] = "x" * data.draw(st.sampled_from([5_000, MAX_RECORD_BYTES + 1, 3 * MAX_RECORD_BYTES]))
    elif isinstance(parent[last], str):
        text = parent[last]
        where = data.draw(st.integers(0, len(text)))
        parent[last] = text[:where] + data.draw(odd_chars) + text[where:]
    return rec


def line_bytes(data: st.DataObject, rec: Any, encoding: str) -> bytes:
    """A record as one JSONL line, maybe with a duplicate key, a cut or a stray byte."""
    text = json.dumps(rec, ensure_ascii=data.draw(st.booleans(), label="ascii"))
    text = re.sub(r'"@@nest(\d+)@@"', lambda m: '{"k": [' * (int(m[1]) // 2) + "1" + "]}" * (int(m[1]) // 2), text)
    raw = text.encode(encoding, "surrogatepass" if encoding == "utf-8" else "replace")
    kind = data.draw(st.sampled_from(["none", "none", "dupkey", "cut", "byte"]), label="line mutation")
    if kind == "dupkey" and raw.endswith(b"}") and raw != b"{}":
        key = data.draw(st.sampled_from(sorted(rec)) if isinstance(rec, dict) and rec else st.just("k"))
        raw = raw[:-1] + b", " + json.dumps(key).encode() + b": " + json.dumps(data.draw(json_values)).encode() + b"}"
    elif kind == "cut":
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    elif kind == "byte":
        where = data.draw(st.integers(0, len(raw)))
        raw = raw[:where] + bytes([data.draw(st.integers(0, 255))]) + raw[where:]
    return raw


def expected_lines(body: bytes) -> list[int]:
    """1-based numbers of the lines ingest reads as records: non-blank, or too long to look at (a line
    that does not end within max_record_bytes + 2 bytes is over the limit whatever it holds)."""
    numbers = []
    for i, line in enumerate(body.split(b"\n"), 1):
        if i == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        content = line.rstrip(b"\r")
        if len(line) >= MAX_RECORD_BYTES + 2 or len(content) > MAX_RECORD_BYTES or content.strip():
            numbers.append(i)
    return numbers


def rows(store: Store, query: str, **params: Any) -> list[tuple]:
    """Rows of a query (plain DuckDB tuples: cheaper than frames for many tiny queries)."""
    return store.con.execute(query, params).fetchall()


def snapshot(store: Store) -> dict[str, list[tuple]]:
    return {t: rows(store, f"SELECT * FROM {t} ORDER BY ALL") for t in TABLES}


def field_roots(spec: formats.Spec) -> set[str]:
    """First steps of every path the spec reads, plus the record and file themselves."""
    paths = [
        spec.messages,
        spec.question,
        spec.question_id,
        spec.correct,
        spec.model,
        spec.answer,
        spec.gold,
        spec.cost,
        spec.error,
        spec.failed_when_null,
        *spec.meta,
        *(p for _f, p, _v in spec.flag_fields),
    ]
    return {p.split(".")[0] for p in paths if p} | {"record", "file"}


COUNTS = (
    "trajectories",
    "failed_runs",
    "rejects",
    "correct",
    "clean",
    "parse_error",
    "max_steps",
    "exec_error",
    "questions",
)


def check_counts(store: Store) -> None:
    """ingest_runs counters match the rows each run put in; every row's question and trajectory exist."""
    runs = rows(store, f"SELECT ingest_id, records, {', '.join(COUNTS)} FROM ingest_runs ORDER BY 1")
    counted = rows(
        store,
        """
        WITH t AS (SELECT ingest_id, count(*) AS trajectories, count(*) FILTER (correct) AS correct,
                          count(*) FILTER (clean) AS clean, count(*) FILTER (parse_error) AS parse_error,
                          count(*) FILTER (max_steps) AS max_steps, count(*) FILTER (exec_error) AS exec_error
                   FROM trajectories GROUP BY 1),
             f AS (SELECT ingest_id, count(*) AS failed_runs FROM failed_runs GROUP BY 1),
             r AS (SELECT ingest_id, count(*) AS rejects FROM ingest_rejects GROUP BY 1),
             q AS (SELECT ingest_id, count(DISTINCT question_id) AS questions FROM (
                       SELECT ingest_id, question_id FROM trajectories
                       UNION ALL SELECT ingest_id, question_id FROM failed_runs) GROUP BY 1)
        SELECT i.ingest_id, coalesce(t.trajectories, 0), coalesce(f.failed_runs, 0), coalesce(r.rejects, 0),
               coalesce(t.correct, 0), coalesce(t.clean, 0), coalesce(t.parse_error, 0), coalesce(t.max_steps, 0),
               coalesce(t.exec_error, 0), coalesce(q.questions, 0)
        FROM ingest_runs i LEFT JOIN t USING (ingest_id) LEFT JOIN f USING (ingest_id)
             LEFT JOIN r USING (ingest_id) LEFT JOIN q USING (ingest_id) ORDER BY 1""",
    )
    assert [(i, *c) for i, _records, *c in runs] == counted
    for _i, records, trajectories, failed, rejects, *_rest in runs:
        assert records == (trajectories + failed + rejects if records else 0)
    orphans = rows(
        store,
        """
        SELECT (SELECT count(*) FROM (SELECT dataset, question_id FROM trajectories UNION ALL
                                      SELECT dataset, question_id FROM failed_runs) ANTI JOIN questions
                                      USING (dataset, question_id)),
               (SELECT count(*) FROM messages ANTI JOIN trajectories USING (trajectory_id))""",
    )
    assert orphans == [(0, 0)]


@settings(
    max_examples=EXAMPLES or 100,
    derandomize=not EXAMPLES,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_broken_inputs_never_break_the_store(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(sorted(VALID)), label="format")
    records = [
        json.loads(json.dumps(r))
        for r in data.draw(st.lists(st.sampled_from(VALID[kind]), min_size=0, max_size=5), label="records")
    ]
    for i, rec in enumerate(records):
        for _ in range(data.draw(st.integers(0, 2), label="mutations")):
            rec = mutate_value(data, rec)
        records[i] = rec
    encoding = data.draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "latin-1", "utf-16"]), label="encoding")
    newline = data.draw(st.sampled_from([b"\n", b"\r\n"]), label="newline")
    lines = [line_bytes(data, rec, "utf-8" if encoding == "utf-16" else encoding) for rec in records]
    body = newline.join(lines) + (newline if data.draw(st.booleans(), label="final newline") else b"")
    if encoding == "utf-16":
        body = body.decode("utf-8", "replace").encode("utf-16")
    if data.draw(st.booleans(), label="BOM") and encoding != "utf-16":
        body = b"\xef\xbb\xbf" + body
    packing = data.draw(st.sampled_from(["plain", "plain", "gzip", "zstd"]), label="compression")
    stored = {"plain": body, "gzip": gzip.compress(body), "zstd": zstandard.ZstdCompressor().compress(body)}[packing]

    path = tmp_path_factory.getbasetemp() / "fuzz.jsonl"
    path.write_bytes(stored)
    try:
        _check(path, body, READ_AS[kind])
    finally:
        path.unlink()


def _check(path: Path, body: bytes, read_as: str) -> None:
    store = Store(":memory:")
    try:
        (summary,) = ingest(store, [path], "d", options=OPTIONS)
        spec = formats.spec_for(summary.format)
    except ValueError as error:
        # A file whose records all lack the format's keys is refused whole (give --format); nothing is written.
        assert re.search(r": cannot tell the record format from the keys of its first records", str(error))
        assert all(not rows for rows in snapshot(store).values())
        (summary,) = ingest(store, [path], "d", read_as, OPTIONS)
        spec = formats.spec_for(read_as)

    # Every line ends as exactly one trajectory, failed run or reject.
    expected = expected_lines(body)
    assert ended_lines(store) == (expected or [0])
    assert summary.records == len(expected)

    # Each reject's reason starts with the field (or the record, or the file) it is about.
    roots = field_roots(spec)
    for (reason,) in rows(store, "SELECT reason FROM ingest_rejects"):
        named = re.match(r"([^:\s]+): ", reason)
        assert named and re.split(r"[.\[]", named.group(1))[0] in roots, reason
        event(f"reject: {named.group(1)}")
    check_counts(store)

    # Ingesting the same file again, or retrying its rejects under the same options, changes nothing.
    before = snapshot(store)
    (again,) = ingest(store, [path], "d", read_as, OPTIONS)
    assert again.already_ingested
    ingest(store, [path], "d", options=replace(OPTIONS, retry_rejects=True))
    assert snapshot(store) == before

    # A retry under a larger size limit takes in what it can; each line still ends exactly once.
    ingest(store, [path], "d", options=replace(OPTIONS, retry_rejects=True, max_record_bytes=4 * MAX_RECORD_BYTES))
    assert ended_lines(store) == (expected or [0])
    check_counts(store)
    store.close()


def ended_lines(store: Store) -> list[int]:
    """The source line of every trajectory, failed run and reject, in order."""
    return [
        line
        for (line,) in rows(
            store,
            "SELECT source_line FROM trajectories UNION ALL SELECT source_line "
            "FROM failed_runs UNION ALL SELECT source_line FROM ingest_rejects ORDER BY 1",
        )
    ]
