"""Question files for the agent runtime (`curate generate --questions`, `curate eval`): the
`{"examples": [{id, question, answer, ...}]}` files of the agent-distillation release (the shared
question sets) and plain JSONL with one `{id, question, answer}` object per line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..ingest.formats import question_hash

_KNOWN = ("id", "question_id", "question", "answer")


@dataclass(frozen=True)
class Question:
    """One question: its id (the source id, or a hash of its text), text, gold answer and other fields."""

    id: str
    text: str
    gold: str | None  # a list of aliases is kept as a JSON array of strings
    meta: dict[str, Any] | None
    position: int  # 1-based: line of a JSONL file, example of an examples file


def load_questions(path: str | Path, limit: int | None = None) -> list[Question]:
    """The questions of a file, in file order (the first `limit`); a bad one is named by line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such question file")
    found: list[Question] = []
    seen: dict[str, str] = {}
    for where, position, record in _records(path):
        question = _question(record, f"{path}: {where}", position)
        if question.id in seen:
            raise ValueError(f"{path}: {where}: id {question.id!r} repeats {seen[question.id]}")
        seen[question.id] = where
        found.append(question)
        if limit is not None and len(found) >= limit:
            break
    if not found:
        raise ValueError(f"{path}: no questions")
    return found


def _records(path: Path) -> Iterator[tuple[str, int, Any]]:
    """(where, position, record) for each question record of the file."""
    data = path.read_bytes()
    try:
        whole = orjson.loads(data)
    except orjson.JSONDecodeError:
        whole = None
    # A whole-file object is an examples file, unless it is one line: a JSONL file of one question.
    if isinstance(whole, dict) and ("examples" in whole or len(data.strip().splitlines()) > 1):
        examples = whole.get("examples")
        if not isinstance(examples, list):
            raise ValueError(
                f"{path}: examples: expected a list of questions (a JSON object file holds "
                '{"examples": [...]}; a JSONL file one question per line)'
            )
        for i, record in enumerate(examples):
            yield f"examples[{i}]", i + 1, record
        return
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", number, orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise ValueError(f"{path}: line {number}: not valid JSON ({error})") from None


def _question(record: Any, where: str, position: int) -> Question:
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object")
    text = record.get("question")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: question: expected non-empty text, got {text!r:.60}")
    qid = record.get("id", record.get("question_id"))
    if qid is None:
        qid = question_hash(text)
    elif isinstance(qid, bool) or not isinstance(qid, (str, int)):
        raise ValueError(f"{where}: id: expected text or an integer, got {qid!r:.60}")
    gold = record.get("answer")
    if gold is not None and not isinstance(gold, str):
        if isinstance(gold, list) and not all(isinstance(a, str) for a in gold):
            raise ValueError(f"{where}: answer: expected text, a number or a list of texts")
        gold = orjson.dumps(gold).decode()
    meta = {k: v for k, v in record.items() if k not in _KNOWN}
    return Question(str(qid), text, gold, meta or None, position)
