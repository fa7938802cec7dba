"""Graders: math-verify verdicts on a table of answer pairs, a pathological answer killed at the
hard limit, SQuAD-style QA exact match / F1 with aliases, the auto rule on the real question sets."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.grade import Grade, aliases, grade_answers, math, resolve_grader
from curate.grade.qa import f1, normalise

# (gold, final answer, verdict): what a careful human grader says.
MATH_PAIRS = [
    # fractions vs decimals, both ways
    ("\\frac{1}{2}", "0.5", True),
    ("0.5", "\\frac{1}{2}", True),
    ("\\dfrac{1}{4}", "0.25", True),
    ("\\frac{28}{99}", "0.282828", True),
    ("\\frac{14}{3}", "14/3", True),
    ("\\frac{14}{3}", "4.67", False),
    # numbers as GSM-hard stores them, thousands separators, currency, units
    ("13138980.0", "13138980", True),
    ("8.0", "8", True),
    ("1000", "1,000", True),
    ("5", "1,000", False),
    ("18", "$18", True),
    ("18", "\\$18.00", True),
    ("18", "18 dollars", True),
    ("10", "10\\text{ cm}", True),
    ("10", "10 cm", True),
    ("50\\%", "50", True),
    ("270.0", "269", False),
    # intervals and sets
    ("(-\\infty,-8]\\cup [8,\\infty)", "(-\\infty, -8] \\cup [8, \\infty)", True),
    ("(-\\infty, 0)", "(-oo, 0)", True),
    ("[1,2)", "[1,2)", True),
    ("[1,2)", "[1,2]", False),
    ("\\{1,2\\}", "\\{2, 1\\}", True),
    # \boxed{} inside text: the boxed answer counts, a sentence's last number otherwise
    ("18", "The answer is \\boxed{18}.", True),
    ("18", "So we get 17 apples, and with the last one \\boxed{18}", True),
    ("18", "The final answer is 18", True),
    ("18", "I think 18, no wait 17", False),
    # expressions: LaTeX, plain sympy spelling, equations
    ("p - q", "-q + p", True),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", True),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, pi/2)", True),
    ("4\\sqrt{15}-14", "4*sqrt(15) - 14", True),
    ("\\frac{\\sqrt{3}}{2}", "sqrt(3)/2", True),
    ("\\ln 2", "log(2)", True),
    ("3", "x = 3", True),
    ("2x - y + 2z - 18 = 0", "2x-y+2z=18", True),
    # the 4 of "4*sin(t)" is not the answer
    ("4.0", "4*sin(theta)/cos(theta)**2", False),
    ("18", "eighteen", False),
]


def test_math_verdicts_on_the_answer_table() -> None:
    golds, answers, expected = zip(*MATH_PAIRS)
    grades = grade_answers("math", ["q"] * len(golds), list(golds), list(answers))
    wrong = [
        (g, a, e, grade.explanation) for g, a, e, grade in zip(golds, answers, expected, grades) if grade.correct != e
    ]
    assert not wrong
    assert {g.grader for g in grades} == {"math"}
    assert [g.score for g in grades] == [float(e) for e in expected]
    assert grades[0].explanation == "math-verify: 1/2 = \\frac{1}{2}"
    assert grades[-1].explanation == "math-verify: no answer could be extracted"


def test_a_pathological_answer_is_killed_at_the_hard_limit_and_the_batch_goes_on() -> None:
    # 9^(9^10) has ~3.7e9 digits: math-verify's comparison runs past any limit we give it.
    golds = ["7", "1", "\\frac{1}{3}", "2"]
    answers = ["\\boxed{7}", "9^{9^{10}}", "0.333333", "3"]
    grades = grade_answers("math", ["q"] * 4, golds, answers, timeout=2)
    assert grades[1] == Grade(False, 0.0, "math-verify: timed out after 2 s (worker killed)", "math")
    assert [g.correct for g in grades] == [True, False, True, False]
    # The killed worker was replaced: the pool grades the next batch.
    assert grade_answers("math", ["q"], ["12"], ["12.0"])[0].correct


def _kill_pool_workers() -> None:
    """SIGKILL every math-verify worker of this process, as an OOM killer or a crash would end them."""
    workers = [p for p in multiprocessing.active_children() if p.name == "pebble_pool_worker"]
    assert workers
    for worker in workers:
        os.kill(worker.pid, signal.SIGKILL)
    for worker in workers:
        worker.join(30)


def test_a_broken_pool_is_replaced_and_the_grade_retried_on_the_new_one() -> None:
    assert grade_answers("math", ["q"], ["314159"], ["314159"])[0].correct  # the pool is up, its workers idle
    _kill_pool_workers()
    # pebble marks a pool broken for good when a worker dies with no task running; wait until it has.
    deadline = time.monotonic() + 30
    while math._pools[2].active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not math._pools[2].active
    assert grade_answers("math", ["q", "q"], ["271828", "\\frac{3}{7}"], ["271828.0", "3/7"]) == [
        Grade(True, 1.0, "math-verify: 271828.000000000 = 271828", "math"),
        Grade(True, 1.0, "math-verify: 3/7 = \\frac{3}{7}", "math"),
    ]
    # Killed just before a grade: the pool breaks under the pairs it was given; they go to a new one.
    _kill_pool_workers()
    assert grade_answers("math", ["q"], ["161803"], ["161803"]) == [
        Grade(True, 1.0, "math-verify: 161803 = 161803", "math")
    ]


def test_a_worker_memory_limit_over_the_hard_limit_is_lowered_to_it() -> None:
    # Under a hard RLIMIT_AS below the workers' 4 GiB, raising theirs failed in every worker's start.
    script = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
        "from curate.grade import grade_answers; "
        "print(grade_answers('math', ['q'], ['12'], ['12.0'])[0].explanation)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stdout, done.stderr) == (0, "math-verify: 12.0000000000000 = 12\n", "")


CTRL_C = """
import multiprocessing, os, signal, threading, time
from curate.grade import grade_answers, math  # imported before the interrupt, which would cut an import


def interrupt():  # Ctrl-C while the workers import (they take a second or more)
    while not multiprocessing.active_children():
        time.sleep(0.001)
    time.sleep(0.2)
    os.killpg(os.getpgrp(), signal.SIGINT)


threading.Thread(target=interrupt).start()
try:
    grade_answers("math", ["q"], ["7"], ["7"])
except KeyboardInterrupt:
    print("interrupted")
print(grade_answers("math", ["q"], ["12"], ["12.0"])[0].explanation)
"""


def test_ctrl_c_while_workers_start_leaves_them_running_and_stderr_empty() -> None:
    # Ctrl-C reaches the terminal's whole process group: workers still importing died of it, each with
    # a traceback on stderr, and left a broken pool.
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C], capture_output=True, text=True, timeout=300, start_new_session=True
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "interrupted\nmath-verify: 12.0000000000000 = 12\n", "")


# A pool whose task thread never ends, as CI once left one (the thread missed the stop after a Ctrl-C).
STUCK = """
import threading
from curate.grade import grade_answers, math

print(grade_answers("math", ["q"], ["7"], ["7"])[0].correct)
pool = next(iter(math._pools.values()))
pool._task_scheduler_loop = threading.Thread(target=threading.Event().wait, daemon=True)
pool._task_scheduler_loop.start()
"""


def test_exit_does_not_wait_on_a_pool_that_never_joins() -> None:
    done = subprocess.run([sys.executable, "-c", STUCK], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "True\n", "")


def test_a_new_workers_imports_do_not_count_against_the_time_limit() -> None:
    # math-verify and sympy load in a worker's start: a pair's limit is its own, even on a fresh pool.
    math.shutdown()
    assert grade_answers("math", ["q"], ["141421"], ["141421"], timeout=0.5) == [
        Grade(True, 1.0, "math-verify: 141421 = 141421", "math")
    ]


def test_missing_gold_or_answer_is_not_correct_with_a_reason() -> None:
    grades = grade_answers("qa", ["q1", "q2", "q3"], [None, "Paris", " "], ["Paris", None, "x"])
    assert grades == [
        Grade(False, None, "no gold answer", "qa"),
        Grade(False, None, "no final answer", "qa"),
        Grade(False, None, "no gold answer", "qa"),
    ]


@pytest.mark.parametrize(
    ("gold", "answer", "correct", "score"),
    [
        ("the Beatles", "Beatles", True, 1.0),
        ("Coahuila, Mexico", "coahuila mexico.", True, 1.0),
        ("Richard Nixon", "President Richard Nixon", False, 0.8),  # p 2/3, r 1
        ('["USA", "United States", "America"]', "the United States", True, 1.0),
        ('["USA", "United States of America"]', "United States", False, 2 / 3),  # best alias: p 1, r 2/4
        ("yes", "Yes.", True, 1.0),
        ("1999", "In 1999", False, 2 / 3),
        ("Titan IIIE", "\\boxed{Titan IIIE}", True, 1.0),
        ("Paris", "London", False, 0.0),
    ],
)
def test_qa_exact_match_against_any_alias_and_best_f1(gold, answer, correct, score) -> None:
    (grade,) = grade_answers("qa", ["q"], [gold], [answer])
    assert (grade.correct, grade.grader) == (correct, "qa")
    assert grade.score == pytest.approx(score)


def test_squad_normalisation_and_f1() -> None:
    assert normalise("  The  Eiffel-Tower, (in) an A-frame!") == "eiffeltower in aframe"
    assert f1("a b c d", "b c x") == pytest.approx(2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4))
    assert f1("b b c", "b c c") == pytest.approx(2 / 3)  # bag of words: one b and one c in common
    assert f1("", "") == 1.0 and f1("a", "") == 0.0


def test_aliases_are_a_json_array_of_strings() -> None:
    assert aliases('["a", "b"]') == ("a", "b")
    assert aliases("[1, 2]") == ("[1, 2]",)  # a math answer, not aliases
    assert aliases("[8, \\infty)") == ("[8, \\infty)",)
    assert aliases("Paris") == ("Paris",)


def test_auto_resolves_every_real_question_set(shared_data: Path) -> None:
    files = sorted((shared_data / "questions").glob("*/*/*.json"))
    assert len(files) == 11
    for path in files:
        golds = [None if e["answer"] is None else str(e["answer"]) for e in json.loads(path.read_text())["examples"]]
        assert resolve_grader(golds) == path.relative_to(shared_data / "questions").parts[0], path.name
    assert resolve_grader([]) == "qa"


def test_unknown_grader_and_judge_without_model_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown grader 'exact' \\(known: auto, math, qa, judge\\)"):
        grade_answers("exact", ["q"], ["1"], ["1"])
    with pytest.raises(ValueError, match="the judge grader needs a judge model"):
        grade_answers("judge", ["q"], ["1"], ["1"])
    with pytest.raises(ValueError, match="1 questions, 2 golds, 1 answers"):
        grade_answers("qa", ["q"], ["1", "2"], ["1"])
