"""Malformed inputs (tests/data/bad/): each bad record is rejected with a reason naming its field,
the good records of the same file go in, and nothing else in the store changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate.ingest import IngestOptions, ingest
from curate.store import Store

BAD = Path(__file__).parents[1] / "data" / "bad"
QUIET = IngestOptions(progress=False)

# file -> the start of the reason its bad record (line 2, between two good records) gets.
REASONS = {
    "truncated_json.jsonl": "record: invalid JSON (unexpected end of data",
    "non_utf8.jsonl": "record: not valid UTF-8 (byte 0xff at offset 23)",
    "record_is_array.jsonl": "record: expected a JSON object, got list",
    "record_is_null.jsonl": "record: expected a JSON object, got null",
    "missing_question.jsonl": "question: missing",
    "question_not_text.jsonl": "question: expected non-empty text, got 42",
    "question_empty.jsonl": "question: expected non-empty text, got '   '",
    "question_id_object.jsonl": "question_id: expected text or an integer, got object",
    "missing_log_data.jsonl": "log_data: missing",
    "log_data_not_json.jsonl": "log_data: not valid JSON (",
    "log_data_string_not_object.jsonl": "log_data: expected an object, got list",
    "log_data_number.jsonl": "log_data: expected an object, got number",
    "messages_not_list.jsonl": "log_data.messages: expected a list of messages, got text",
    "messages_dict.jsonl": "log_data.messages: expected a list of messages, got object",
    "message_not_object.jsonl": "log_data.messages[1]: expected an object, got text",
    "unknown_role.jsonl": "log_data.messages[2].role: unknown role 'wizard'",
    "role_missing.jsonl": "log_data.messages[0].role: expected text, got null",
    "role_not_string.jsonl": "log_data.messages[0].role: expected text, got number",
    "content_int.jsonl": "log_data.messages[1].content: expected text or a list of text parts, got number",
    "content_image_part.jsonl": "log_data.messages[1].content[0]: expected a text part",
    "content_part_not_object.jsonl": "log_data.messages[1].content[0]: expected a text part",
    "score_yes.jsonl": "score: expected 0/1 or a boolean, got 'yes'",
    "score_two.jsonl": "score: expected 0/1 or a boolean, got 2",
    "score_missing.jsonl": "score: missing",
    "cost_text.jsonl": "cost: expected a number, got text",
    "chat_correct_missing.jsonl": "correct: missing",
    "chat_correct_text.jsonl": "correct: expected 0/1 or a boolean, got 'true'",
    "mint_success_text.jsonl": "state.success: expected 0/1 or a boolean, got 'yes'",
    "mint_history_missing.jsonl": "state.history: missing",
}
CONTENT = (
    "SELECT question_id, sample_idx, teacher_model, correct, generated_answer, parse_error, max_steps, exec_error,"
    " clean, assistant_turns, tool_calls, assistant_chars, profile, content_hash, cost FROM trajectories ORDER BY ALL",
    "SELECT t.question_id, t.sample_idx, m.position, m.role, m.norm_role, m.text FROM messages m"
    " JOIN trajectories t USING (trajectory_id) ORDER BY ALL",
    "SELECT question_id, text, gold_answer, words, source_meta FROM questions ORDER BY ALL",
    "SELECT question_id, teacher_model, error FROM failed_runs ORDER BY ALL",
)


def content(store: Store) -> list[list[tuple]]:
    """Everything the good records put in, minus what depends on the file (ids, lines, names)."""
    return [store.sql(q).rows() for q in CONTENT]


def test_the_suite_has_enough_bad_inputs() -> None:
    files = {p.name for p in BAD.iterdir()}
    assert set(REASONS) | {"empty.jsonl", "truncated.jsonl.gz"} == files
    assert len(files) >= 20


@pytest.mark.parametrize("name", sorted(REASONS))
def test_bad_record_is_rejected_and_the_rest_goes_in(tmp_path: Path, name: str) -> None:
    data = (BAD / name).read_bytes()
    lines = data.split(b"\n")
    store = Store(tmp_path / "bad.duckdb")
    (summary,) = ingest(store, [BAD / name], "d", options=QUIET)
    assert (summary.records, summary.trajectories, summary.rejects) == (3, 2, 1)
    rejects = store.sql("SELECT ingest_id, source_file, source_line, reason, raw FROM ingest_rejects").rows()
    assert len(rejects) == 1
    ingest_id, source_file, line, reason, raw = rejects[0]
    assert (ingest_id, Path(source_file).name, line) == (summary.ingest_id, name, 2)
    assert reason.startswith(REASONS[name]), reason
    assert raw == lines[1]
    # The same file without its bad line puts in exactly the same rows.
    good = tmp_path / name
    good.write_bytes(b"\n".join([lines[0], lines[2]]) + b"\n")
    reference = Store(tmp_path / "good.duckdb")
    ingest(reference, [good], "d", options=QUIET)
    assert content(store) == content(reference)
    assert store.sql("SELECT records, trajectories, rejects FROM ingest_runs").rows() == [(3, 2, 1)]


def test_empty_file_is_one_reject(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    (summary,) = ingest(store, [BAD / "empty.jsonl"], "d", options=QUIET)
    assert (summary.records, summary.trajectories, summary.rejects) == (0, 0, 1)
    assert store.sql("SELECT source_line, reason FROM ingest_rejects").rows() == [(0, "file: empty, no records")]
    assert [rows for rows in content(store)] == [[], [], [], []]


def test_cut_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    (summary,) = ingest(store, [BAD / "truncated.jsonl.gz"], "d", options=QUIET)
    assert (summary.trajectories, summary.rejects) == (1, 1)
    line, reason = store.sql("SELECT source_line, reason FROM ingest_rejects").row(0)
    assert line == 2
    assert reason.startswith("file: compressed stream is corrupt or cut short after line 1 (Compressed file ended")


def test_ten_megabyte_line_is_rejected_by_size(tmp_path: Path) -> None:
    good = (BAD / "score_yes.jsonl").read_bytes().split(b"\n")
    huge = {"question": "Big?", "score": 1, "log_data": {"messages": [{"role": "user", "content": "x" * (10 << 20)}]}}
    raw = json.dumps(huge).encode()
    path = tmp_path / "huge.jsonl"
    path.write_bytes(b"\n".join([good[0], raw, good[2]]) + b"\n")
    store = Store(tmp_path / "s.duckdb")
    (summary,) = ingest(store, [path], "d", options=QUIET)
    assert (summary.records, summary.trajectories, summary.rejects) == (3, 2, 1)
    line, reason, kept = store.sql("SELECT source_line, reason, raw FROM ingest_rejects").row(0)
    assert line == 2
    assert reason == (
        f"record: {len(raw)} bytes, over the {8 << 20}-byte limit (max_record_bytes); "
        f"its first {64 << 10} bytes are kept"
    )
    assert kept == raw[: 64 << 10]
