"""Ingest: every format, counts known by construction, real MINT runs against an independent count,
sample order, idempotence, stable ids, and a SIGKILL mid-file leaving the store as it was."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import zstandard

from curate.ingest import IngestOptions, ingest
from curate.ingest.formats import question_hash
from curate.store import Store

QUIET = IngestOptions(progress=False)


@dataclass(frozen=True)
class Run:
    """One smolagents run by construction: its steps and which troubles it meets."""

    question: str
    steps: int  # code actions that run (the last calls final_answer)
    correct: bool
    parse: bool = False  # one extra step whose output has no code block
    exec_error: bool = False  # one extra step whose code fails
    max_steps: bool = False
    roles: str = "plain"  # plain | enum (MessageRole.X)
    parts: bool = False  # content as a list of text parts
    log_as_string: bool = False  # log_data as a JSON string (the Hub's dumps)

    @property
    def turns(self) -> int:
        return self.steps + self.parse + self.exec_error

    @property
    def tool_calls(self) -> int:
        return self.steps + self.exec_error

    @property
    def clean(self) -> bool:
        return self.correct and not self.parse and not self.max_steps


def _message(run: Run, role: str, text: str) -> dict:
    stored = f"MessageRole.{role.upper().replace('-', '_')}" if run.roles == "enum" else role
    return {"role": stored, "content": [{"type": "text", "text": text}] if run.parts else text}


def assistant_texts(run: Run) -> list[str]:
    """The assistant messages of a run, in order."""
    texts = [f"Thought: look up part {i}.\nCode:\n```py\nprint({i})\n```<end_code>" for i in range(run.steps - 1)]
    if run.parse:
        texts.append("Thought: I know it already, the answer is plain.")
    if run.exec_error:
        texts.append("Thought: divide.\nCode:\n```py\nprint(1 / 0)\n```<end_code>")
    texts.append("Thought: done.\nCode:\n```py\nfinal_answer('4')\n```<end_code>")
    return texts


def record(run: Run) -> dict:
    """The smolagents log record of a run."""
    messages = [
        _message(run, "system", "You solve tasks with code."),
        _message(run, "user", f"New task:\n{run.question}<reference>hidden</reference>"),
    ]
    for text in assistant_texts(run):
        messages.append(_message(run, "assistant", text))
        if "Code:" not in text:
            messages.append(_message(run, "tool-response", "Error:\nError in code parsing:\nno code block"))
            continue
        messages.append(_message(run, "tool-call", "Calling tools:\n[{'id': 'call_1'}]"))
        result = "Error:\nCode execution failed at line 'print(1 / 0)'" if "1 / 0" in text else "Observation:\n1"
        messages.append(_message(run, "tool-response", f"Call id: call_1\n{result}"))
    if run.max_steps:
        messages.insert(-3, _message(run, "tool-response", "Error:\nReached max steps."))
    log_data = {"messages": messages}
    return {
        "question": run.question,
        "true_answer": "4",
        "generated_answer": "4" if run.correct else "5",
        "score": int(run.correct),
        "model_id": "teacher-32b",
        "cost": 0.5,
        "log_data": json.dumps(log_data) if run.log_as_string else log_data,
    }


RUNS = [
    Run("What is 2+2?", 1, True),
    Run("What is 2+2?", 3, True, exec_error=True, roles="enum"),
    Run("  what is   2+2? ", 2, False, parts=True),  # same question after normalisation
    Run("Who wrote Hamlet?", 2, True, parse=True, log_as_string=True),
    Run("Who wrote Hamlet?", 5, True, max_steps=True, roles="enum", parts=True),
    Run("Who wrote Hamlet?", 4, False, exec_error=True, parse=True, log_as_string=True),
]
FAILED = {
    "question": "Who wrote Hamlet?",
    "true_answer": "Shakespeare",
    "score": 0,
    "model_id": "teacher-32b",
    "error": "AgentGenerationError: context length exceeded",
    "log_data": None,
}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_smolagents_counts_match_construction(tmp_path: Path) -> None:
    records = [record(r) for r in RUNS]
    path = write_jsonl(tmp_path / "runs.jsonl", records[:3] + [FAILED] + records[3:])
    store = Store(tmp_path / "s.duckdb")
    (summary,) = ingest(store, [path], "demo", options=QUIET)
    assert summary.format == "smolagents"
    counts = (summary.records, summary.trajectories, summary.failed_runs, summary.questions, summary.rejects)
    assert counts == (7, 6, 1, 2, 0)
    assert summary.correct == sum(r.correct for r in RUNS) == 4
    assert summary.clean == sum(r.clean for r in RUNS) == 2
    assert (summary.parse_error, summary.max_steps, summary.exec_error) == (2, 1, 2)
    assert summary.assistant_turns == sum(r.turns for r in RUNS)
    assert summary.tool_calls == sum(r.tool_calls for r in RUNS)
    rows = store.sql(
        "SELECT question_id, sample_idx, correct, clean, parse_error, max_steps, exec_error, assistant_turns, "
        "tool_calls, assistant_chars, teacher_model, generated_answer, source_line FROM trajectories "
        "ORDER BY source_line"
    ).rows()
    q1, q2 = question_hash("What is 2+2?"), question_hash("Who wrote Hamlet?")
    lines = [1, 2, 3, 5, 6, 7]
    qids, samples = [q1, q1, q1, q2, q2, q2], [0, 1, 2, 0, 1, 2]
    assert rows == [
        (
            qid,
            s,
            r.correct,
            r.clean,
            r.parse,
            r.max_steps,
            r.exec_error,
            r.turns,
            r.tool_calls,
            sum(map(len, assistant_texts(r))),
            "teacher-32b",
            "4" if r.correct else "5",
            line,
        )
        for qid, s, r, line in zip(qids, samples, RUNS, lines)
    ]
    failed = store.sql("SELECT question_id, teacher_model, source_line, error FROM failed_runs").rows()
    assert failed == [(q2, "teacher-32b", 4, FAILED["error"])]
    questions = store.sql("SELECT question_id, text, gold_answer, words FROM questions ORDER BY text").rows()
    # A question's text and gold come from its first record (here the failed run's for Hamlet).
    assert questions == [(q1, "What is 2+2?", "4", 3), (q2, "Who wrote Hamlet?", "Shakespeare", 3)]


def test_raw_messages_are_kept(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "runs.jsonl", [record(RUNS[4])])
    store = Store(tmp_path / "s.duckdb")
    ingest(store, [path], "demo", options=QUIET)
    stored = store.sql("SELECT role, norm_role, text FROM messages ORDER BY position").rows()
    raw = record(RUNS[4])["log_data"]["messages"]
    assert [s[0] for s in stored] == [m["role"] for m in raw]
    assert stored[0][:2] == ("MessageRole.SYSTEM", "system")
    assert {s[1] for s in stored} == {"system", "user", "assistant", "tool-call", "tool-response"}
    assert [s[2] for s in stored] == [m["content"][0]["text"] for m in raw]
    assert "<reference>" in stored[1][2]  # stripped only when rendering


def test_compressed_files_read_the_same(tmp_path: Path) -> None:
    text = "".join(json.dumps(record(r)) + "\n" for r in RUNS).encode()
    (tmp_path / "r.jsonl").write_bytes(text)
    (tmp_path / "r.jsonl.gz").write_bytes(gzip.compress(text))
    (tmp_path / "r.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(text))
    store = Store(tmp_path / "s.duckdb")
    for name in ("r.jsonl", "r.jsonl.gz", "r.jsonl.zst"):
        (summary,) = ingest(store, [tmp_path / name], name, options=QUIET)
        assert (summary.trajectories, summary.clean, summary.tool_calls) == (6, 2, sum(r.tool_calls for r in RUNS))
    per_set = store.sql("SELECT dataset, list(content_hash ORDER BY source_line) AS h FROM trajectories GROUP BY 1")
    assert len(set(map(tuple, per_set["h"].to_list()))) == 1


def test_hf_dataset_folder_and_parquet(tmp_path: Path) -> None:
    import datasets

    # The Hub's dumps hold log_data as a JSON string; a failed run has none.
    records = [record(replace(r, log_as_string=True)) for r in RUNS] + [
        {**FAILED, "generated_answer": None, "cost": None}
    ]
    for r in records:
        r.setdefault("error", None)
    ds = datasets.Dataset.from_list(records)
    ds.save_to_disk(str(tmp_path / "saved"))
    ds.to_parquet(str(tmp_path / "runs.parquet"))
    store = Store(tmp_path / "s.duckdb")
    (saved,) = ingest(store, [tmp_path / "saved"], "saved", options=QUIET)
    (parquet,) = ingest(store, [tmp_path / "runs.parquet"], "parquet", "hf", QUIET)
    for summary in (saved, parquet):
        assert summary.format == "hf"
        counts = (summary.records, summary.trajectories, summary.failed_runs, summary.clean, summary.exec_error)
        assert counts == (7, 6, 1, 2, 2)
    lines = store.sql("SELECT DISTINCT source_line FROM trajectories ORDER BY 1")["source_line"].to_list()
    assert lines == [1, 2, 3, 4, 5, 6]  # the row, 1-based


def test_chat_format_with_tool_role(tmp_path: Path) -> None:
    def chat(qid: str, correct: bool, steps: int) -> dict:
        messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": f"Q{qid}"}]
        for i in range(steps):
            messages += [
                {"role": "assistant", "content": f"Code:\n```py\nprint({i})\n```<end_code>"},
                {"role": "tool", "content": "Error: Code execution failed" if i == 0 else f"{i}"},
            ]
        messages.append({"role": "assistant", "content": "The answer is 4."})
        return {"question_id": qid, "question": f"Q{qid}", "messages": messages, "correct": correct, "model": "m"}

    path = write_jsonl(tmp_path / "chat.jsonl", [chat("a", True, 2), chat("a", False, 0), chat("b", True, 1)])
    store = Store(tmp_path / "s.duckdb")
    (summary,) = ingest(store, [path], "chat", options=QUIET)
    assert summary.format == "chat"
    rows = store.sql(
        "SELECT question_id, sample_idx, correct, clean, exec_error, assistant_turns, tool_calls "
        "FROM trajectories ORDER BY source_line"
    ).rows()
    assert rows == [
        ("a", 0, True, True, True, 3, 2),
        ("a", 1, False, False, False, 1, 0),
        ("b", 0, True, True, True, 2, 1),
    ]
    assert store.sql("SELECT DISTINCT norm_role FROM messages WHERE role = 'tool'").item() == "tool-response"


def test_profile_override_counts_other_markers(tmp_path: Path) -> None:
    messages = [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "<code>print(1)</code> then <code>print(2)</code>"},
    ]
    path = write_jsonl(tmp_path / "new.jsonl", [{"question": "Q", "messages": messages, "correct": True}])
    store = Store(tmp_path / "s.duckdb")
    (default,) = ingest(store, [path], "a", options=QUIET)
    (new,) = ingest(store, [path], "b", options=IngestOptions(profile="smolagents_new", progress=False))
    assert (default.tool_calls, new.tool_calls) == (0, 2)
    assert store.sql("SELECT profile FROM trajectories WHERE dataset = 'b'").item() == "smolagents_new"


def test_jsonpath_options_read_any_schema(tmp_path: Path) -> None:
    turns = [
        {"speaker": "human", "text": "Name a prime."},
        {"speaker": "gpt", "text": "<execute>print(7)</execute>"},
        {"speaker": "observation", "text": "7"},
        {"speaker": "gpt", "text": "<solution>7</solution>"},
    ]
    rows = [
        {
            "meta": {"qid": 17, "q": "Name a prime.", "who": "big-model"},
            "payload": json.dumps({"turns": turns}),
            "eval": {"ok": ok},
        }
        for ok in (True, False)
    ]
    path = write_jsonl(tmp_path / "custom.jsonl", rows)
    store = Store(tmp_path / "s.duckdb")
    paths = (
        ("messages", "payload.turns"),
        ("question", "meta.q"),
        ("question_id", "meta.qid"),
        ("correct", "eval.ok"),
        ("model", "meta.who"),
        ("role_key", "speaker"),
        ("content_key", "text"),
    )
    (summary,) = ingest(store, [path], "custom", options=IngestOptions(profile="mint", paths=paths, progress=False))
    assert (summary.format, summary.trajectories, summary.correct, summary.tool_calls) == ("jsonpath", 2, 1, 2)
    got = store.sql(
        "SELECT question_id, sample_idx, teacher_model, assistant_turns, generated_answer "
        "FROM trajectories ORDER BY sample_idx"
    ).rows()
    assert got == [("17", 0, "big-model", 2, "7"), ("17", 1, "big-model", 2, "7")]


def test_mint_runs_match_an_independent_count(tmp_path: Path, shared_data: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    for name, n_questions, n_models in (("mint_gsm8k", 48, 55), ("mint_math", 100, 55)):
        path = shared_data / "trajectories" / "mint" / f"{name}.jsonl.gz"
        with gzip.open(path, "rt") as fh:
            source = [json.loads(line) for line in fh]
        (summary,) = ingest(store, [path], name, options=QUIET)
        assert summary.format == "mint"
        assert (summary.trajectories, summary.questions, summary.rejects) == (n_questions * n_models, n_questions, 0)
        assert summary.correct == sum(r["state"]["success"] for r in source)
        assert summary.max_steps == sum(r["state"]["terminate_reason"] == "max_steps" for r in source)
        per_question = store.sql(
            "SELECT question_id, count(*) AS n, sum(correct::INT) AS ok FROM trajectories "
            "WHERE dataset = $d GROUP BY 1",
            d=name,
        )
        expected_n = Counter(str(r["task"]["task_id"]) for r in source)
        expected_ok = Counter(str(r["task"]["task_id"]) for r in source if r["state"]["success"])
        assert {q: (n, ok) for q, n, ok in per_question.rows()} == {
            q: (expected_n[q], expected_ok[q]) for q in expected_n
        }
        texts = dict(store.sql("SELECT question_id, text FROM questions WHERE dataset = $d", d=name).rows())
        assert texts == {str(r["task"]["task_id"]): r["task"]["prompt"].strip() for r in source}
        # The answer is the innermost last <solution> text (checked where every such tag is closed).
        answers = store.sql("SELECT source_line, generated_answer FROM trajectories WHERE dataset = $d", d=name)
        expected = {}
        for line, r in enumerate(source, 1):
            said = [m["content"] for m in r["state"]["history"] if m["role"] == "assistant"]
            if all(t.count("<solution>") == t.count("</solution>") for t in said):
                innermost = r"<solution>((?:(?!<solution>).)*?)</solution>"
                found = [x for t in said for x in re.findall(innermost, t, re.DOTALL)]
                expected[line] = found[-1].strip() if found else None
        got = dict(answers.rows())
        assert {line: got[line] for line in expected} == expected
        assert sum(a is not None for a in expected.values()) > len(source) / 2


def test_sample_idx_continues_across_files_and_duplicates_stay(tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [record(RUNS[0]), record(RUNS[0])])
    second = write_jsonl(tmp_path / "b.jsonl", [record(RUNS[3]), record(RUNS[0]), record(RUNS[0])])
    store = Store(tmp_path / "s.duckdb")
    ingest(store, [first, second], "demo", options=QUIET)
    rows = store.sql(
        "SELECT source_file, source_line, sample_idx, content_hash FROM trajectories "
        "WHERE question_id = $q ORDER BY sample_idx",
        q=question_hash(RUNS[0].question),
    ).rows()
    assert [(Path(f).name, line, s) for f, line, s, _h in rows] == [
        ("a.jsonl", 1, 0),
        ("a.jsonl", 2, 1),
        ("b.jsonl", 2, 2),
        ("b.jsonl", 3, 3),
    ]
    assert len({h for *_x, h in rows}) == 1  # identical samples: one content, four trajectories


def test_reingest_is_a_no_op_and_ids_are_stable(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "runs.jsonl", [record(r) for r in RUNS] + [FAILED])
    store = Store(tmp_path / "s.duckdb")
    ingest(store, [path], "demo", options=QUIET)
    tables = ("questions", "trajectories", "messages", "failed_runs", "ingest_runs", "ingest_rejects")
    before = {t: store.sql(f"SELECT count(*) FROM {t}").item() for t in tables}
    (again,) = ingest(store, [path], "demo", options=QUIET)
    assert again.already_ingested and "already ingested" in again.line()
    assert {t: store.sql(f"SELECT count(*) FROM {t}").item() for t in tables} == before
    ids = store.sql("SELECT trajectory_id FROM trajectories ORDER BY 1")["trajectory_id"].to_list()
    other = Store(tmp_path / "t.duckdb")
    ingest(other, [path], "demo", options=QUIET)
    assert other.sql("SELECT trajectory_id FROM trajectories ORDER BY 1")["trajectory_id"].to_list() == ids


KILLED_INGEST = textwrap.dedent("""
    import sys
    from curate.ingest import IngestOptions, ingest
    from curate.store import Store

    def pause(records):
        print(records, flush=True)
        sys.stdin.readline()  # the test kills us while we wait here

    options = IngestOptions(batch_records=40, progress=False, on_batch=pause)
    ingest(Store(sys.argv[1]), [sys.argv[2]], "demo", options=options)
""")


def test_sigkill_mid_file_leaves_the_store_as_before(tmp_path: Path) -> None:
    from curate.ingest.synth import SynthConfig, write

    db = tmp_path / "s.duckdb"
    small = write_jsonl(tmp_path / "small.jsonl", [record(r) for r in RUNS])
    big = tmp_path / "big.jsonl"
    write(SynthConfig(questions=30, k=10), big)
    tables = ("questions", "trajectories", "messages", "failed_runs", "ingest_runs", "ingest_rejects")
    with Store(db) as store:
        ingest(store, [small], "demo", options=QUIET)
        before = {t: store.sql(f"SELECT * FROM {t} ORDER BY ALL").rows() for t in tables}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_INGEST, str(db), str(big)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert child.stdout.readline().strip() == "40"
    child.stdin.write("\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "80"  # two batches written inside the file's transaction
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    with Store(db) as store:
        assert {t: store.sql(f"SELECT * FROM {t} ORDER BY ALL").rows() for t in tables} == before
        (summary,) = ingest(store, [big], "demo", options=QUIET)
        assert not summary.already_ingested and summary.records == 300


def test_unknown_format_and_paths_are_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", [{"foo": 1}, {"bar": 2}])
    with pytest.raises(ValueError, match=r"x.jsonl: cannot tell the record format .* \(bar, foo\); give --format"):
        ingest(Store(tmp_path / "u.duckdb"), [path], "d", options=QUIET)
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        ingest(Store(tmp_path / "s.duckdb"), [path], "d", "csv", QUIET)
    with pytest.raises(FileNotFoundError, match="no such file"):
        ingest(Store(tmp_path / "t.duckdb"), [tmp_path / "missing.jsonl"], "d", options=QUIET)
