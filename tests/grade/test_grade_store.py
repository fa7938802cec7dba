"""`curate grade` on a store: grades kept per grader, the logs' own verdict kept as `source`, correct
and clean set by the latest run, resumable after kill -9, and real MINT runs graded by math-verify."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from factory import add_trajectories
from test_grade_judge import ScriptedJudge

from curate.cli import main
from curate.grade.store import grade_store
from curate.ingest import IngestOptions, ingest
from curate.store import Store


def qa_store(path: Path) -> Store:
    """Four runs of two QA questions; `correct` as the logs said (1 and 3 wrong by the logs)."""
    store = Store(path)
    add_trajectories(
        store,
        [
            dict(dataset="qa", question_id="q1", gold_answer="Paris", generated_answer="paris", correct=False),
            dict(dataset="qa", question_id="q1", gold_answer="Paris", generated_answer="Lyon", correct=True),
            dict(
                dataset="qa",
                question_id="q2",
                gold_answer='["JFK", "John F. Kennedy"]',
                generated_answer="John F Kennedy",
                correct=True,
                parse_error=True,
            ),
            dict(dataset="qa", question_id="q2", generated_answer="Nixon", correct=False),
            dict(dataset="nogold", question_id="q3", gold_answer=None, generated_answer="x", correct=True),
        ],
    )
    return store


def rows(store: Store, query: str) -> list[tuple]:
    return store.sql(query).rows()


def test_grade_sets_correct_and_clean_keeps_the_logs_verdict_and_is_idempotent(tmp_path: Path) -> None:
    store = qa_store(tmp_path / "s.duckdb")
    # The factory's trajectories come from no ingest run: give them one so their verdict counts as the log's.
    store.con.execute(
        "INSERT INTO ingest_runs VALUES (0, 'factory', 'h', 'chat', 'qa', 5, 5, 0, 3, 3, 2, 1, 0, 0, "
        '0, \'{"spec": {"correct": "score"}}\', now(), now())'
    )
    (summary,) = grade_store(store, "qa", progress=False)
    assert (summary.grader, summary.graded, summary.kept, summary.correct, summary.clean) == ("qa", 4, 0, 2, 1)
    assert (summary.with_source, summary.agree_source) == (4, 2)
    assert rows(
        store,
        "SELECT question_id, generated_answer, correct, clean, graded_by FROM trajectories "
        "WHERE dataset = 'qa' ORDER BY ALL",
    ) == [
        ("q1", "Lyon", False, False, "qa"),
        ("q1", "paris", True, True, "qa"),
        ("q2", "John F Kennedy", True, False, "qa"),  # correct, but a parse error keeps it out of clean
        ("q2", "Nixon", False, False, "qa"),
    ]
    assert rows(
        store,
        "SELECT t.generated_answer, g.correct, g.score, g.explanation FROM grades g "
        "JOIN trajectories t USING (trajectory_id) WHERE grader = 'source' ORDER BY ALL",
    ) == [
        ("John F Kennedy", True, 1.0, "the verdict the log came with (score)"),
        ("Lyon", True, 1.0, "the verdict the log came with (score)"),
        ("Nixon", False, 0.0, "the verdict the log came with (score)"),
        ("paris", False, 0.0, "the verdict the log came with (score)"),
    ]
    state = ("SELECT * EXCLUDE (grading_run) FROM grades ORDER BY ALL", "SELECT * FROM trajectories ORDER BY ALL")
    before = [rows(store, query) for query in state]
    (again,) = grade_store(store, "qa", progress=False)
    assert (again.graded, again.kept, again.correct, again.grading_run) == (0, 4, 2, 2)
    (regraded,) = grade_store(store, "qa", "qa", regrade=True, progress=False)
    assert (regraded.graded, regraded.kept) == (4, 0)
    assert [rows(store, query) for query in state] == before
    assert rows(
        store, "SELECT grading_run, grader, requested, graded, kept, no_gold, correct FROM grading_runs ORDER BY 1"
    ) == [(1, "qa", "auto", 4, 0, 0, 2), (2, "qa", "auto", 0, 4, 0, 2), (3, "qa", "qa", 4, 0, 0, 2)]


def test_the_latest_run_sets_correct_and_a_question_without_gold_is_left_alone(tmp_path: Path) -> None:
    store = qa_store(tmp_path / "s.duckdb")
    judge = ScriptedJudge(["Verdict: CORRECT"] * 4)
    (by_judge,) = grade_store(store, "qa", "judge", judge=judge, progress=False)
    assert (by_judge.grader, by_judge.correct) == ("judge:scripted-judge", 4)
    (by_qa,) = grade_store(store, "qa", "qa", progress=False)
    assert (by_qa.graded, by_qa.correct) == (4, 2)
    (back,) = grade_store(store, "qa", "judge", judge=ScriptedJudge([]), progress=False)
    assert (back.graded, back.kept, back.correct) == (0, 4, 4)  # the judge's grades, set again, not asked again
    assert rows(store, "SELECT DISTINCT graded_by FROM trajectories WHERE dataset = 'qa'") == [
        ("judge:scripted-judge",)
    ]
    assert rows(store, "SELECT grader, count(*) FROM grades GROUP BY 1 ORDER BY 1") == [
        ("judge:scripted-judge", 4),
        ("qa", 4),
    ]  # no ingest run: no verdict of the log to keep
    (nogold,) = grade_store(store, "nogold", progress=False)
    assert (nogold.graded, nogold.no_gold, nogold.correct) == (0, 1, 1)
    assert rows(store, "SELECT correct, graded_by FROM trajectories WHERE dataset = 'nogold'") == [(True, None)]


def test_a_judge_reply_with_a_lone_surrogate_is_stored_with_a_replacement_character(tmp_path: Path) -> None:
    store = qa_store(tmp_path / "s.duckdb")
    (summary,) = grade_store(
        store, "qa", "judge", judge=ScriptedJudge(["It says \ud800.\nVerdict: CORRECT"] * 4), progress=False
    )
    assert summary.graded == 4
    assert rows(store, "SELECT DISTINCT explanation FROM grades") == [("It says \ufffd.",)]


def test_cli_prints_one_line_per_data_set_and_refuses_bad_input(tmp_path: Path, capsys) -> None:
    qa_store(tmp_path / "s.duckdb").close()
    assert main(["grade", "--db", str(tmp_path / "s.duckdb"), "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "nogold: qa graded 0, kept 0 earlier grades, 1 without a gold answer left as they were; 1/1 correct "
        "(100.0%), 1 clean (grading_run=1)",
        "qa: qa graded 4, kept 0 earlier grades, 0 without a gold answer left as they were; 2/4 correct (50.0%), "
        "1 clean (grading_run=2)",
    ]
    for argv, message in [
        (["--grader", "judge"], "--grader judge needs --judge-model"),
        (["--judge-model", "smollm2"], "--judge-model is used only with --grader judge"),
        (["--dataset", "nope"], "no trajectories in data set 'nope'"),
    ]:
        assert main(["grade", "--db", str(tmp_path / "s.duckdb"), *argv]) == 2
        assert message in capsys.readouterr().err


KILLED_GRADE = """
import os, sys
sys.path[:0] = [sys.argv[2], os.path.dirname(sys.argv[2])]  # this test's folder, and tests/ (the helpers)
from curate.grade import store as grading
from curate.store import Store
from test_grade_judge import ScriptedJudge

class Pausing(ScriptedJudge):
    def generate(self, requests):
        if self.calls:
            print(len(self.calls), flush=True)
            sys.stdin.readline()  # the test kills us while we wait here
        return super().generate(requests)

grading.CHUNK = 2
grading.grade_store(Store(sys.argv[1]), "qa", "judge", judge=Pausing(["Verdict: INCORRECT"] * 4), progress=False)
"""


def test_kill_9_mid_grade_leaves_a_consistent_store_and_the_rerun_finishes_it(tmp_path: Path) -> None:
    qa_store(tmp_path / "s.duckdb").close()
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_GRADE, str(tmp_path / "s.duckdb"), str(Path(__file__).parent)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "1"  # the first chunk of two is committed
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    with Store(tmp_path / "s.duckdb") as store:
        assert rows(
            store,
            "SELECT count(*), count_if(NOT g.correct AND NOT t.correct), count_if(t.graded_by IS "
            "NOT NULL) FROM grades g JOIN trajectories t USING (trajectory_id)",
        ) == [(2, 2, 2)]
        assert rows(store, "SELECT grading_run, finished_at FROM grading_runs") == [(1, None)]
        (summary,) = grade_store(store, "qa", "judge", judge=ScriptedJudge(["Verdict: INCORRECT"] * 2), progress=False)
        assert (summary.graded, summary.kept, summary.correct) == (2, 2, 0)
        assert rows(
            store,
            "SELECT count(*) FROM trajectories WHERE dataset = 'qa' AND graded_by = "
            "'judge:scripted-judge' AND NOT correct",
        ) == [(4,)]


# What math-verify says against MINT's own verdict (state.success) on real runs, measured once and
# kept (dataset, trajectories, math-verify correct, agreements): all GSM8K runs, and the runs of the
# MATH questions with id < 40 (all 100 take ~3x longer; their figures are in the README). MINT's
# checker accepts any number within 5% of the reference and any answer containing the reference
# text, and its 5% test never passes for a negative reference.
MINT_AGREEMENT = [("mint-gsm8k", 2640, 968, 2569), ("mint-math", 2200, 363, 2069)]


def test_math_verify_on_the_real_mint_runs_against_mints_own_verdict(tmp_path: Path, shared_data: Path) -> None:
    mint = shared_data / "trajectories" / "mint"
    with gzip.open(mint / "mint_math.jsonl.gz", "rt") as lines:
        first_40 = [line for line in lines if int(json.loads(line)["task"]["task_id"]) < 40]
    (tmp_path / "mint_math_40.jsonl").write_text("".join(first_40))
    store = Store(tmp_path / "mint.duckdb")
    for path, dataset in ((mint / "mint_gsm8k.jsonl.gz", "mint-gsm8k"), (tmp_path / "mint_math_40.jsonl", "mint-math")):
        ingest(store, [path], dataset, options=IngestOptions(progress=False))
    summaries = grade_store(store, progress=False)
    assert [(s.dataset, s.trajectories, s.correct, s.agree_source) for s in summaries] == MINT_AGREEMENT
    assert all(s.grader == "math" and s.with_source == s.trajectories for s in summaries)
    disagree = store.sql(
        "SELECT q.gold_answer, t.generated_answer, s.correct AS mint, g.correct AS ours FROM grades s "
        "JOIN grades g USING (trajectory_id) JOIN trajectories t USING (trajectory_id) "
        "JOIN questions q USING (dataset, question_id) WHERE s.grader = 'source' AND g.grader = 'math' "
        "AND s.correct <> g.correct"
    )
    pairs = set(disagree.rows())
    assert ("1110", "1080", True, False) in pairs  # within MINT's 5%
    assert ("-3.0", "-3", False, True) in pairs  # MINT: |ref - ans| <= 0.05 * ref, never for ref < 0
    assert ("5.0", "The answer is 5.", False, True) in pairs  # MINT: "5.0" is not a substring


def test_a_store_made_before_the_grade_tables_gains_them_when_opened_for_writing(tmp_path: Path) -> None:
    with Store(tmp_path / "old.duckdb") as store:
        store.con.execute("DROP TABLE grades; DROP TABLE grading_runs; ALTER TABLE trajectories DROP graded_by")
    with Store(tmp_path / "old.duckdb") as store:
        assert rows(store, "SELECT count(*) FROM grades") == [(0,)]
        assert "graded_by" in store.sql("FROM trajectories LIMIT 0").columns
