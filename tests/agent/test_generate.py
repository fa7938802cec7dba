"""`curate generate`: runs land in the store as ingest would write their logs, graded, with their
seeds and provenance; resumable after kill -9 and Ctrl-C; `--log-out` ingests back into the same
trajectories; a lone surrogate is stored as U+FFFD; a reader makes it wait, a second identical
command refuses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from agent_script import ScriptedModel, code_step, kill_when_paused
from factory import add_trajectories

from curate.agent.generate import GenerateConfig, generate, write_log
from curate.agent.loop import derive_seed
from curate.agent.questions import load_questions
from curate.agent.records import trajectory_id
from curate.cli import main
from curate.ingest import IngestOptions, ingest
from curate.store import Store

QUESTIONS = [
    {"id": "q1", "question": "What is 6 times 7?", "answer": "42", "level": "1"},
    {"id": "q2", "question": "What is 2 plus 3?", "answer": "5"},
    {"id": "q3", "question": "What is 10 minus 1?", "answer": "9"},
]
COMPARED = (
    "question_id",
    "sample_idx",
    "content_hash",
    "correct",
    "clean",
    "parse_error",
    "max_steps",
    "exec_error",
    "generated_answer",
    "assistant_turns",
    "tool_calls",
    "assistant_chars",
    "teacher_model",
)


@pytest.fixture
def questions(tmp_path: Path) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return path


def _model(base_seed: int = 0) -> ScriptedModel:
    """q1: sample 1 answers wrong; q2: one step; q3: no code at first (a parse error), then the answer."""
    wrong = derive_seed(derive_seed(base_seed, "q1", 1), 1)  # the seed of sample 1's second step

    def q1(request, n):
        if n == 0:
            return code_step("x = 6 * 7\nprint(x)")
        return code_step("final_answer(x - 1)" if request.seed == wrong else "final_answer(x)")

    return ScriptedModel(
        {
            "What is 6 times 7?": q1,
            "What is 2 plus 3?": [code_step("final_answer(2 + 3)")],
            "What is 10 minus 1?": ["It is nine.", code_step("final_answer(9)")],
        }
    )


def _config(questions: Path, **changes) -> GenerateConfig:
    base = dict(
        questions=str(questions), dataset="gen", model="scripted", k=2, tools=("python",), max_steps=3, write_every=2
    )
    return GenerateConfig(**{**base, **changes})


def _rows(db: Path, dataset: str):
    with Store(db, read_only=True) as store:
        return store.sql(
            f"SELECT {', '.join(COMPARED)} FROM trajectories WHERE dataset = $d ORDER BY question_id, sample_idx",
            d=dataset,
        )


def test_generated_runs_are_graded_store_rows_with_their_seeds(tmp_path: Path, questions: Path) -> None:
    db = tmp_path / "gen.duckdb"
    summary = generate(db, _config(questions), progress=False, backend=_model())
    assert (summary.written, summary.skipped, summary.counts["trajectories"]) == (6, 0, 6)
    with Store(db, read_only=True) as store:
        rows = store.sql(
            "SELECT question_id, sample_idx, seed, correct, clean, parse_error, generated_answer, steps, "
            "stop_reason, teacher_model, generation_run FROM trajectories ORDER BY 1, 2"
        ).rows()
        grades = store.sql("SELECT grader, count(*), count(*) FILTER (WHERE correct) FROM grades GROUP BY 1").rows()
        run = store.sql("SELECT * FROM generation_runs").row(0, named=True)
        roles = (
            store.sql(
                "SELECT list(role ORDER BY position) FROM messages m JOIN trajectories t "
                "USING (trajectory_id) WHERE question_id = 'q3' AND sample_idx = 0"
            )
            .item()
            .to_list()
        )
        meta = store.sql("SELECT source_meta FROM questions WHERE question_id = 'q1'").item()
    gid = summary.generation_run
    assert rows == [
        ("q1", 0, derive_seed(0, "q1", 0), True, True, False, "42", 2, "final_answer", "scripted-teacher", gid),
        ("q1", 1, derive_seed(0, "q1", 1), False, False, False, "41", 2, "final_answer", "scripted-teacher", gid),
        ("q2", 0, derive_seed(0, "q2", 0), True, True, False, "5", 1, "final_answer", "scripted-teacher", gid),
        ("q2", 1, derive_seed(0, "q2", 1), True, True, False, "5", 1, "final_answer", "scripted-teacher", gid),
        ("q3", 0, derive_seed(0, "q3", 0), True, False, True, "9", 2, "final_answer", "scripted-teacher", gid),
        ("q3", 1, derive_seed(0, "q3", 1), True, False, True, "9", 2, "final_answer", "scripted-teacher", gid),
    ]
    assert grades == [("math", 6, 5)]
    assert roles == ["system", "user", "assistant", "tool-response", "assistant", "tool-call", "tool-response"]
    assert json.loads(meta) == {"level": "1"}
    assert (
        run["k"],
        run["base_seed"],
        run["tools"],
        run["grader"],
        run["trajectories"],
        run["correct"],
        run["clean"],
    ) == (2, 0, "python", "math", 6, 5, 3)
    assert run["system_prompt"].startswith("You are an expert problem solver") and run["finished_at"] is not None


def test_rerun_resumes_grows_and_refuses_other_settings(tmp_path: Path, questions: Path) -> None:
    db = tmp_path / "gen.duckdb"
    first = generate(db, _config(questions, limit=2), progress=False, backend=_model())
    again = generate(db, _config(questions, limit=2), progress=False, backend=_model())
    assert (first.written, again.written, again.skipped) == (4, 0, 4)
    more = generate(db, _config(questions, k=3), progress=False, backend=_model())
    assert (more.generation_run, more.written, more.skipped) == (first.generation_run, 5, 4)
    with Store(db, read_only=True) as store:
        counts = store.sql(
            "SELECT question_id, list(sample_idx ORDER BY sample_idx) FROM trajectories GROUP BY 1 ORDER BY 1"
        ).rows()
    assert counts == [("q1", [0, 1, 2]), ("q2", [0, 1, 2]), ("q3", [0, 1, 2])]
    with pytest.raises(
        ValueError,
        match=f"data set 'gen' already holds trajectories from generation run "
        f"{first.generation_run}, generated or ingested with other settings",
    ):
        generate(db, _config(questions, temperature=0.5), progress=False, backend=_model())


def test_log_out_ingests_back_into_the_same_trajectories(tmp_path: Path, questions: Path) -> None:
    db, log = tmp_path / "gen.duckdb", tmp_path / "logs" / "gen.jsonl"
    generate(db, _config(questions, log_out=str(log)), progress=False, backend=_model())
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["question_id"], r["sample_idx"]) for r in records] == [
        ("q1", 0),
        ("q1", 1),
        ("q2", 0),
        ("q2", 1),
        ("q3", 0),
        ("q3", 1),
    ]
    assert records[0]["log_data"]["messages"][2]["content"][0]["text"] == code_step("x = 6 * 7\nprint(x)")
    other = tmp_path / "other.duckdb"
    with Store(other) as store:
        [done] = ingest(store, [log], "gen", options=IngestOptions(progress=False))
    assert (done.trajectories, done.rejects, done.format) == (6, 0, "smolagents")
    assert _rows(other, "gen").equals(_rows(db, "gen"))
    assert write_log(other, "gen", tmp_path / "none.jsonl") == 0  # ingested logs are not generated runs


SURROGATE = "Print a lone surrogate, then answer 7."


def _surrogates(tmp_path: Path) -> tuple[Path, ScriptedModel]:
    """A question whose run prints a lone surrogate, thinks one and answers with one."""
    questions = tmp_path / "surrogate.jsonl"
    questions.write_text(json.dumps({"id": "s1", "question": SURROGATE, "answer": "7"}) + "\n")
    return questions, ScriptedModel(
        {
            SURROGATE: [
                code_step("print(chr(0xD800))", thought="I print \ud800 first."),
                code_step("final_answer('7' + chr(0xDFFF))"),
            ]
        }
    )


def test_a_lone_surrogate_is_stored_as_a_replacement_character(tmp_path: Path) -> None:
    db, log = tmp_path / "gen.duckdb", tmp_path / "gen.jsonl"
    questions, model = _surrogates(tmp_path)
    summary = generate(db, _config(questions, k=1, log_out=str(log)), progress=False, backend=model)
    assert (summary.written, summary.counts["trajectories"]) == (1, 1)
    with Store(db, read_only=True) as store:
        texts = store.sql("SELECT text FROM messages WHERE position IN (2, 4) ORDER BY position")["text"].to_list()
        answer = store.sql("SELECT generated_answer FROM trajectories").item()
        grade = store.sql("SELECT correct, explanation FROM grades").row(0)
    assert texts == [
        "Thought: I print \ufffd first.\nCode:\n```py\nprint(chr(0xD800))\n```<end_code>",
        "Call id: call_1\nObservation:\nExecution logs:\n\ufffd\nLast output from code snippet:\nNone",
    ]
    assert answer == "7\ufffd"
    assert grade == (True, "math-verify: 7 = 7")
    assert json.loads(log.read_text())["generated_answer"] == "7\ufffd"


def test_a_first_thought_with_a_lone_surrogate_is_stored_as_a_replacement_character(tmp_path: Path) -> None:
    db = tmp_path / "gen.duckdb"
    questions, model = _surrogates(tmp_path)
    model.first_thought = "Seven \ud800.\n\n"
    generate(db, _config(questions, k=1, first_thought_prefix=True), progress=False, backend=model)
    with Store(db, read_only=True) as store:
        assert store.sql("SELECT prefix FROM generation_prefixes").item() == "Thought: Seven \ufffd.\n\n"


def test_a_failed_write_names_its_runs(tmp_path: Path) -> None:
    db = tmp_path / "gen.duckdb"
    questions, model = _surrogates(tmp_path)
    with Store(db) as store:  # another data set's row holds the id the run will get
        add_trajectories(
            store, [{"dataset": "other", "question_id": "s1", "trajectory_id": trajectory_id("gen", "s1", 0)}]
        )
    with pytest.raises(
        RuntimeError,
        match="^could not write the runs of data set 'gen' \\(question s1 sample 0\\) "
        "into the store: Constraint Error: Duplicate key ",
    ):
        generate(db, _config(questions, k=1), progress=False, backend=model)


def test_first_thought_prefix_starts_every_sample_and_is_recorded(tmp_path: Path, questions: Path) -> None:
    db = tmp_path / "gen.duckdb"
    model = _model()
    generate(db, _config(questions, limit=1, first_thought_prefix=True), progress=False, backend=model)
    [cot] = [r for batch in model.batches for r in batch if r.stop == ("\n\n",)]
    assert cot.messages[1] == {"role": "user", "content": "What is 6 times 7?"} and cot.temperature == 0
    with Store(db, read_only=True) as store:
        stored = store.sql("SELECT prefix FROM generation_prefixes").item()
        rows = store.sql(
            "SELECT t.first_thought, m.text FROM trajectories t JOIN messages m USING (trajectory_id) "
            "WHERE m.position = 2 ORDER BY t.sample_idx"
        ).rows()
    assert stored == "Thought: Let me think.\n\n"
    assert rows == [(stored, stored + code_step("x = 6 * 7\nprint(x)"))] * 2
    assert [r.prefix for batch in model.batches for r in batch if r.stop and r.stop != ("\n\n",)].count(stored) == 2


def test_question_files_and_their_errors(tmp_path: Path, shared_data: Path) -> None:
    math500 = load_questions(shared_data / "questions/math/test/math_500_20250414.json", limit=3)
    assert len(math500) == 3 and all(q.gold and q.text for q in math500) and math500[0].position == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "question": "ok?", "answer": ["yes", "y"]}\n\n{"id": 2, "answer": "x"}\n')
    with pytest.raises(ValueError, match=f"^{bad}: line 3: question: expected non-empty text, got None$"):
        load_questions(bad)
    assert load_questions(bad, limit=1)[0].gold == '["yes","y"]'
    one = tmp_path / "one.jsonl"  # a whole-file JSON object, yet a JSONL file of one question
    one.write_text('{"id": "q", "question": "2 + 2?", "answer": "4"}\n')
    assert [(q.id, q.text, q.gold) for q in load_questions(one)] == [("q", "2 + 2?", "4")]
    loose = tmp_path / "loose.json"
    loose.write_text('{\n  "question": "2 + 2?"\n}\n')
    with pytest.raises(ValueError, match=f"^{loose}: examples: expected a list of questions"):
        load_questions(loose)
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps({"examples": [{"id": "a", "question": "x"}, {"id": "a", "question": "y"}]}))
    with pytest.raises(ValueError, match=f"^{twice}: examples\\[1\\]: id 'a' repeats examples\\[0\\]$"):
        load_questions(twice)


def test_cli_names_a_bad_question_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "question": "ok?"}\nnot json\n')
    code = main(
        [
            "generate",
            "--db",
            str(tmp_path / "x.duckdb"),
            "--questions",
            str(bad),
            "--dataset",
            "d",
            "--model",
            "tiny",
            "--k",
            "1",
            "--tools",
            "python",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"curate generate: error: {bad}: line 2: not valid JSON")


def test_cli_refuses_a_corpus_without_web_search(tmp_path: Path, questions: Path, capsys) -> None:
    code = main(
        [
            "generate",
            "--db",
            str(tmp_path / "x.duckdb"),
            "--questions",
            str(questions),
            "--dataset",
            "d",
            "--model",
            "tiny",
            "--k",
            "1",
            "--tools",
            "python",
            "--retriever-url",
            "http://127.0.0.1:9/",
        ]
    )
    assert code == 2
    assert capsys.readouterr().err == (
        "curate generate: error: --corpus and --retriever-url serve web_search, which --tools leaves out\n"
    )
    assert not (tmp_path / "x.duckdb").exists()


# `curate generate` with one pause point: the second batch's rows are inserted and its transaction is still
# open when the job says so on stderr and waits to be killed. The kill then lands at the same moment on a
# machine of any speed, in the middle of a write, after exactly one committed run.
PAUSED = "paused inside the second write"
PAUSING = f"""
import sys, threading
from curate.agent import writer as job
from curate.cli import main

real, calls = job.write_records, []

def write_records(*args, **kwargs):
    ids = real(*args, **kwargs)
    calls.append(ids)
    if len(calls) == 2:
        print({PAUSED!r}, file=sys.stderr, flush=True)
        threading.Event().wait()
    return ids

job.write_records = write_records
sys.exit(main())
"""


def _command(
    db: Path, questions: Path, model: Path, script: str = "import sys; from curate.cli import main; sys.exit(main())"
) -> list[str]:
    return [
        sys.executable,
        "-c",
        script,
        "generate",
        "--db",
        str(db),
        "--questions",
        str(questions),
        "--dataset",
        "tiny-gen",
        "--model",
        str(model),
        "--k",
        "3",
        "--tools",
        "python",
        "--max-steps",
        "2",
        "--max-new-tokens",
        "12",
        "--slots",
        "2",
        "--write-every",
        "1",
        "--seed",
        "7",
        "--quiet",
    ]


def test_kill_minus_9_then_rerun_gives_exactly_k_per_question(
    tmp_path: Path, questions: Path, tiny_model_dir: Path
) -> None:
    db = tmp_path / "killed.duckdb"
    kill_when_paused(_command(db, questions, tiny_model_dir, PAUSING), PAUSED)
    with Store(db, read_only=True) as store:  # the killed transaction left nothing; the committed one is whole
        partial = store.sql("SELECT count(*) FROM trajectories").item()
        grades = store.sql("SELECT count(*) FROM grades").item()
    assert (partial, grades) == (1, 1)
    done = subprocess.run(_command(db, questions, tiny_model_dir), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].startswith("generation_run=gen-")
    assert "8 runs generated, 1 already stored" in done.stdout
    with Store(db, read_only=True) as store:
        per_question = store.sql(
            "SELECT question_id, list(sample_idx ORDER BY sample_idx) AS samples, "
            "count(DISTINCT trajectory_id) AS n FROM trajectories GROUP BY 1 ORDER BY 1"
        ).rows()
        orphans = store.sql(
            "SELECT count(*) FROM messages WHERE trajectory_id NOT IN (SELECT trajectory_id FROM trajectories)"
        ).item()
        grades = store.sql("SELECT count(*) FROM grades").item()
    assert per_question == [(q, [0, 1, 2], 3) for q in ("q1", "q2", "q3")] and (orphans, grades) == (0, 9)
    # Each sample is its own: an uninterrupted run writes the same transcripts, and its log (a real
    # model's arbitrary text) ingests back into them.
    clean, log = tmp_path / "clean.duckdb", tmp_path / "clean.jsonl"
    whole = subprocess.run([*_command(clean, questions, tiny_model_dir), "--log-out", str(log)], capture_output=True)
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert _rows(db, "tiny-gen").equals(_rows(clean, "tiny-gen"))
    with Store(tmp_path / "ingested.duckdb") as store:
        [done] = ingest(store, [log], "tiny-gen", options=IngestOptions(progress=False))
    assert (done.trajectories, done.rejects) == (9, 0)
    assert _rows(tmp_path / "ingested.duckdb", "tiny-gen").equals(_rows(clean, "tiny-gen"))


def test_a_reader_holding_the_store_makes_generate_wait_not_fail(tmp_path: Path, questions: Path, capsys) -> None:
    db = tmp_path / "gen.duckdb"
    Store(db).close()
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, duckdb; con = duckdb.connect(sys.argv[1], "
            "read_only=True); print('open', flush=True); sys.stdin.read()",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout.readline() == "open\n"
    threading.Timer(2.5, reader.communicate, [""]).start()
    summary = generate(db, _config(questions), progress=False, backend=_model())
    assert (summary.written, summary.counts["trajectories"]) == (6, 6)
    assert capsys.readouterr().err == (
        f"curate: {db}: a reader (PID {reader.pid}) has this store open; waiting up to 30 s for it\n"
    )


# `curate generate` that stops after its first write (the store closed, the run still going) until told to go on.
WROTE = "wrote once, waiting"
HOLDING = f"""
import sys
from curate.agent import writer as job
from curate.cli import main

real, calls = job.Writer.flush, []

def flush(self):
    real(self)
    calls.append(1)
    if len(calls) == 1:
        print({WROTE!r}, file=sys.stderr, flush=True)
        sys.stdin.readline()

job.Writer.flush = flush
sys.exit(main())
"""


def test_a_second_identical_generate_refuses_in_one_line(tmp_path: Path, questions: Path, tiny_model_dir: Path) -> None:
    db = tmp_path / "gen.duckdb"
    first = subprocess.Popen(
        _command(db, questions, tiny_model_dir, HOLDING),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    wrote = threading.Event()

    def read() -> None:
        for line in first.stderr:
            seen.append(line)
            if line.strip() == WROTE:
                wrote.set()

    threading.Thread(target=read, daemon=True).start()
    assert wrote.wait(600), "".join(seen)[-2000:]
    with Store(db, read_only=True) as store:
        run = store.sql("SELECT generation_run FROM generation_runs").item()
    second = subprocess.run(_command(db, questions, tiny_model_dir), capture_output=True, text=True, timeout=600)
    assert (second.returncode, second.stdout) == (2, "")
    assert second.stderr == (
        f"curate generate: error: {db}: generation run {run} is being generated by another "
        f"process (PID {first.pid}); wait for it to finish, or stop it, then run the same "
        "command again\n"
    )
    out, _ = first.communicate("\n", timeout=600)
    assert first.returncode == 0, "".join(seen)[-2000:]
    assert "9 runs generated, 0 already stored" in out
    with Store(db, read_only=True) as store:
        per_question = store.sql(
            "SELECT question_id, list(sample_idx ORDER BY sample_idx) FROM trajectories GROUP BY 1 ORDER BY 1"
        ).rows()
        grades = store.sql("SELECT count(*) FROM grades").item()
    assert per_question == [(q, [0, 1, 2]) for q in ("q1", "q2", "q3")] and grades == 9


# `curate generate` with the scripted teacher of `_model`, a little slow per step, saying on stdout when a
# batch of runs has been committed to the store.
INTERRUPTIBLE = f"""
import sys, time
sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]
from test_generate import _model
from curate.agent import generate as job
from curate.cli import main

model = _model()
scripted = model.generate

def generate(requests):
    time.sleep(0.2)
    return scripted(requests)

model.generate = generate
job.make_backend = lambda *args, **kwargs: model
real = job.Writer.flush

def flush(self):
    runs = len(self.pending)
    real(self)
    if runs:
        print("wrote", flush=True)

job.Writer.flush = flush
sys.exit(main())
"""


def test_ctrl_c_is_one_line_exit_130_and_the_rerun_resumes(tmp_path: Path, questions: Path) -> None:
    db = tmp_path / "gen.duckdb"
    argv = [
        sys.executable,
        "-c",
        INTERRUPTIBLE,
        "generate",
        "--db",
        str(db),
        "--questions",
        str(questions),
        "--dataset",
        "gen",
        "--model",
        "scripted",
        "--k",
        "3",
        "--tools",
        "python",
        "--max-steps",
        "3",
        "--write-every",
        "1",
        "--slots",
        "2",
        "--quiet",
    ]
    job = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert job.stdout.readline() == "wrote\n"
    os.killpg(job.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
    _, err = job.communicate(timeout=300)
    assert (job.returncode, err) == (130, "curate generate: interrupted; run the same command again to resume\n")
    with Store(db, read_only=True) as store:
        written = store.sql("SELECT count(*) FROM trajectories").item()
        orphans = store.sql(
            "SELECT count(*) FROM messages WHERE trajectory_id NOT IN (SELECT trajectory_id FROM trajectories)"
        ).item()
    assert 1 <= written < 9 and orphans == 0
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{9 - written} runs generated, {written} already stored" in again.stdout
    whole = tmp_path / "whole.duckdb"
    generate(whole, _config(questions, k=3, write_every=1, slots=2), progress=False, backend=_model())
    assert _rows(db, "gen").equals(_rows(whole, "gen"))
