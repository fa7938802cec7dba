"""Grading final answers against gold answers: one batch entry point, `grade_answers`, used by
`curate grade`, inline grading in `curate generate`, and `curate eval`.

    math.py   math-verify in killable worker processes (exact match of the final answer)
    qa.py     SQuAD-style normalised exact match and token F1 against every gold alias
    judge.py  an LLM judge through any generation backend, our prompt in judge_prompt.txt

`auto` resolves to math or qa from the shape of a question set's gold answers (`resolve_grader`).
A gold answer stored as a JSON array of strings is a list of aliases; anything else is one answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from ..agent.backends import Backend

GRADERS = ("auto", "math", "qa", "judge")
SOURCE = "source"  # grader name of the verdict a log came with (the teacher run's own grade)
# A gold answer that is a number or holds LaTeX / math symbols; a set where at least MATH_SHARE of the
# golds look like this is math (measured: MATH, AIME, GSM-hard, OlymMath >= 0.95; QA sets <= 0.14).
_MATHY = re.compile(r"^\s*[-+]?[\d,]*\.?\d+(e[-+]?\d+)?\s*$|[\\^_{}=<>$]")
MATH_SHARE = 0.5


@dataclass(frozen=True)
class Grade:
    """The verdict on one final answer, its score, why, and which grader gave it."""

    correct: bool
    score: float | None  # math, judge: 1.0 / 0.0; qa: best token F1; None when it could not be graded
    explanation: str
    grader: str  # math | qa | judge:<model> | source


def aliases(gold: str) -> tuple[str, ...]:
    """The gold answer's aliases: a JSON array of strings is several, anything else is one."""
    if gold.startswith("["):
        try:
            found = orjson.loads(gold)
        except orjson.JSONDecodeError:
            return (gold,)
        if isinstance(found, list) and found and all(isinstance(a, str) for a in found):
            return tuple(found)
    return (gold,)


def resolve_grader(golds: Sequence[str | None]) -> str:
    """'math' or 'qa' for a question set: math when most gold answers are numbers or LaTeX."""
    present = [a for g in golds if g is not None for a in aliases(g)]
    mathy = sum(bool(_MATHY.search(g)) for g in present)
    return "math" if present and mathy >= MATH_SHARE * len(present) else "qa"


def grade_answers(
    grader: str,
    questions: Sequence[str],
    golds: Sequence[str | None],
    answers: Sequence[str | None],
    *,
    judge: Backend | None = None,
    workers: int = 2,
    timeout: float = 20.0,
) -> list[Grade]:
    """One Grade per answer, in order; `auto` resolves on these golds (pass a resolved name for a subset)."""
    if not len(questions) == len(golds) == len(answers):
        raise ValueError(f"grade_answers: {len(questions)} questions, {len(golds)} golds, {len(answers)} answers")
    if grader == "auto":
        grader = resolve_grader(golds)
    if grader not in GRADERS:
        raise ValueError(f"unknown grader {grader!r} (known: {', '.join(GRADERS)})")
    name = grader
    if grader == "judge":
        if judge is None:
            raise ValueError("the judge grader needs a judge model (--judge-model)")
        from .judge import judge_name

        name = judge_name(judge)
    grades: list[Grade | None] = []
    todo = []  # (index, gold aliases, answer) of the answers a grader has to look at
    for i, (gold, answer) in enumerate(zip(golds, answers)):
        if gold is None or not gold.strip():
            grades.append(Grade(False, None, "no gold answer", name))
        elif answer is None or not answer.strip():
            grades.append(Grade(False, None, "no final answer", name))
        else:
            grades.append(None)
            todo.append((i, aliases(gold), answer))
    if grader == "math":
        from .math import verify_all

        for (i, _g, _a), (ok, why) in zip(todo, verify_all([(g, a) for _i, g, a in todo], workers, timeout)):
            grades[i] = Grade(ok, float(ok), why, name)
    elif grader == "qa":
        from .qa import grade_qa

        for i, gold_aliases, answer_text in todo:
            ok, f1, why = grade_qa(gold_aliases, answer_text)
            grades[i] = Grade(ok, f1, why, name)
    else:
        from .judge import grade_judge

        assert judge is not None  # refused above without one
        verdicts = grade_judge(judge, [(questions[i], g, a) for i, g, a in todo])
        for (i, _g, _a), (verdict, why) in zip(todo, verdicts):
            grades[i] = Grade(bool(verdict), None if verdict is None else float(verdict), why, name)
    return grades  # type: ignore[return-value]  # every slot was filled above
