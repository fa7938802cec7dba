"""LLM-judge grading through any generation backend: our prompt (judge_prompt.txt), temperature 0,
the judge's explanation kept, a verdict read from its last `Verdict:` line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources
from string import Template

from ..agent.backends import Backend, Completion, GenRequest

MAX_ANSWER_CHARS = 2000  # longer answers are cut for the judge (the release cut at 1000)
MAX_NEW_TOKENS = 256
_VERDICT = re.compile(r"^\W*verdict\W*:\W*(correct|incorrect)\b", re.IGNORECASE | re.MULTILINE)


def prompt_template() -> Template:
    """The judge prompt, with $question, $gold and $answer placeholders."""
    return Template(resources.files(__package__).joinpath("judge_prompt.txt").read_text())


def judge_prompt(question: str, golds: Sequence[str], answer: str) -> str:
    """The judge's prompt for one answer (aliases joined with ' / ')."""
    return prompt_template().substitute(question=question, gold=" / ".join(golds), answer=answer[:MAX_ANSWER_CHARS])


def judge_name(backend: Backend) -> str:
    """The grader name recorded for a judge: 'judge:' and the model it ran."""
    return f"judge:{getattr(backend, 'model_id', None) or backend.name}"


def read_verdict(completion: Completion) -> tuple[bool | None, str]:
    """(verdict, explanation) from the judge's text; verdict None when no `Verdict:` line is found."""
    text = completion.text.strip()
    found = list(_VERDICT.finditer(text))
    if not found:
        cut = " (cut at the token limit)" if completion.finish == "length" else ""
        return None, f"judge: no 'Verdict: CORRECT|INCORRECT' line{cut}; it wrote: {text[:300]!r}"
    last = found[-1]
    explanation = text[: last.start()].strip() or text
    return last.group(1).lower() == "correct", explanation


def grade_judge(backend: Backend, items: Sequence[tuple[str, Sequence[str], str]]) -> list[tuple[bool | None, str]]:
    """(verdict, explanation) per (question, gold aliases, answer), in one batched generation call."""
    requests = [
        GenRequest(
            messages=({"role": "user", "content": judge_prompt(q, golds, answer)},),
            max_new_tokens=MAX_NEW_TOKENS,
            temperature=0.0,
            seed=0,
        )
        for q, golds, answer in items
    ]
    return [read_verdict(c) for c in backend.generate(requests)] if requests else []
