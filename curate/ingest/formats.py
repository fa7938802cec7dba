"""Record formats: where a teacher run keeps its messages, question, correctness and model, and how
one record becomes store rows.

Every format is a `Spec` of dotted paths plus a few format facts (which messages are tool output,
which markers raise the error flags). smolagents, chat and MINT are presets; `jsonpath` is the chat
preset with the paths a user names, so a new trajectory schema needs no code change.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from ..render import chat_messages, markers, normalise_role

FLAGS = ("parse_error", "max_steps", "exec_error")
_MISSING = object()


class RecordError(ValueError):
    """A record that cannot be read; the message starts with the field it is about."""


@dataclass(frozen=True)
class Spec:
    """Where the fields of one run record live, and the format's facts for flags and markers."""

    name: str
    messages: str
    question: str
    correct: str
    question_id: str | None = None
    model: str | None = None
    answer: str | None = None
    gold: str | None = None
    cost: str | None = None
    error: str | None = None
    role_key: str = "role"
    content_key: str = "content"
    profile: str = "smolagents"
    # A path whose value null marks a failed run (smolagents: log_data), counted, not a trajectory.
    failed_when_null: str | None = None
    # MINT's first user message is a few-shot prompt ending in "Task:\n<question>".
    question_after: str | None = None
    # Normalised roles whose text is tool output, scanned for the error flags.
    observation_roles: tuple[str, ...] = ("tool-response",)
    flag_markers: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("parse_error", ("Error in code parsing",)),
        ("max_steps", ("Reached max steps",)),
        ("exec_error", ("Code execution failed",)),
    )
    # (flag, path, value): the flag is also set when the record's field at path equals value.
    flag_fields: tuple[tuple[str, str, str], ...] = ()
    meta: tuple[str, ...] = field(default=())

    def options(self) -> dict[str, Any]:
        """The spec as plain JSON-able data (stored with each ingest run)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


SMOLAGENTS = Spec(
    name="smolagents",
    messages="log_data.messages",
    question="question",
    question_id="question_id",
    correct="score",
    model="model_id",
    answer="generated_answer",
    gold="true_answer",
    cost="cost",
    error="error",
    failed_when_null="log_data",
)
CHAT = Spec(
    name="chat",
    messages="messages",
    question="question",
    question_id="question_id",
    correct="correct",
    model="model",
    answer="answer",
    gold="gold",
)
MINT = Spec(
    name="mint",
    messages="state.history",
    question="task.prompt",
    question_id="task.task_id",
    correct="state.success",
    model="model",
    gold="task.reference",
    error="state.error",
    profile="mint",
    question_after="Task:",
    observation_roles=("user",),
    # MINT answers an unparseable action with "I don't understand your input" and shows
    # tracebacks / SyntaxErrors for failed code; it stops a run at its step budget.
    flag_markers=(
        ("parse_error", ("I don't understand your input",)),
        ("exec_error", ("Traceback (most recent call last)", "Error: ")),
    ),
    flag_fields=(("max_steps", "state.terminate_reason", "max_steps"),),
    meta=("task.task_name", "task.metadata"),
)
PRESETS = {s.name: s for s in (SMOLAGENTS, CHAT, MINT)}
PATH_OPTIONS = ("messages", "question", "question_id", "correct", "model", "answer", "gold", "role_key", "content_key")


def spec_for(name: str, profile: str | None = None, **paths: str | None) -> Spec:
    """The preset `name` (or `jsonpath`: chat with the given paths), with overrides applied."""
    if name == "jsonpath":
        base = replace(CHAT, name="jsonpath")
    elif name in PRESETS:
        base = PRESETS[name]
    else:
        raise ValueError(f"unknown record format {name!r} (known: {', '.join([*PRESETS, 'jsonpath'])})")
    # Any: replace() checks each keyword against its field's type, and every one named here is text
    overrides: dict[str, Any] = {k: v for k, v in paths.items() if v is not None}
    if unknown := set(overrides) - set(PATH_OPTIONS):
        raise ValueError(f"unknown path option(s): {', '.join(sorted(unknown))}")
    if profile is not None:
        markers.profile(profile)
        overrides["profile"] = profile
    return replace(base, **overrides)


def sniff(record: Any) -> str | None:
    """The preset whose keys this record has (mint, smolagents, chat), or None."""
    if not isinstance(record, dict):
        return None
    if "state" in record and "task" in record:
        return "mint"
    if "log_data" in record:
        return "smolagents"
    if "messages" in record:
        return "chat"
    return None


def get(record: Any, path: str) -> Any:
    """The value at a dotted path (`a.b.0.c`); a JSON string met on the way is decoded.

    Returns the module's _MISSING sentinel where a key is absent (or a step is null); a step that
    meets a number, a boolean, or a list where a key is wanted raises a RecordError naming the field
    and the type found.
    """
    value = record
    steps = path.split(".")
    for i, step in enumerate(steps):
        if isinstance(value, (str, bytes)):
            # The Hub's smolagents dumps store log_data as a JSON string.
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError as error:
                raise RecordError(f"{'.'.join(steps[:i])}: not valid JSON ({error})") from None
        if isinstance(value, dict):
            value = value.get(step, _MISSING)
        elif isinstance(value, list) and step.lstrip("-").isdigit():
            index = int(step)
            value = value[index] if -len(value) <= index < len(value) else _MISSING
        elif value is None:
            return _MISSING
        else:
            expected = "a list" if step.lstrip("-").isdigit() else "an object"
            raise RecordError(f"{'.'.join(steps[:i])}: expected {expected}, got {_json_type(value)}")
        if value is _MISSING:
            return _MISSING
    return value


def to_json(value: Any, path: str) -> str:
    """A value as JSON text; a RecordError names the field where it cannot be (too deep, odd type)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError as error:
        if "Recursion limit" in str(error):
            raise RecordError(f"{path}: nested too deeply to store as JSON text (over 254 levels)") from None
        raise RecordError(f"{path}: cannot store as JSON text ({error})") from None


def normalised_question(text: str) -> str:
    """Question text as compared for ids: NFKC, lower case, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def question_hash(text: str) -> str:
    """The id of a question with no source id: a hash of its normalised text."""
    return "h" + hashlib.blake2b(normalised_question(text).encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class Parsed:
    """One record read: its question, and either a trajectory row and messages or a failed run."""

    question_id: str
    question: str
    gold: str | None
    meta: str | None  # JSON text of the format's extra fields
    model: str | None
    error: str | None
    failed: bool
    row: dict | None = None
    messages: list[tuple[str, str, str]] | None = None  # (stored role, normalised role, text)

    def trajectory(self) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        """The trajectory row and its messages (a failed run has neither)."""
        if self.row is None or self.messages is None:
            raise RecordError(f"question {self.question_id}: a failed run has no trajectory")
        return self.row, self.messages


def _json_type(value: Any) -> str:
    """The JSON name of a value's type, for reasons (null, boolean, number, text, list, object)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    return "list" if isinstance(value, list) else "object" if isinstance(value, dict) else type(value).__name__


def _parts(value: Any, where: str) -> str:
    """The text of content that is not a plain string: null, or a list of text parts."""
    if value is None:
        return ""
    if isinstance(value, list):
        parts = []
        for j, part in enumerate(value):
            text = part.get("text") if isinstance(part, dict) else None
            if not isinstance(text, str) or part.get("type", "text") != "text":
                raise RecordError(f"{where}[{j}]: expected a text part {{type: text, text: ...}}")
            parts.append(text)
        return "".join(parts)
    raise RecordError(f"{where}: expected text or a list of text parts, got {_json_type(value)}")


def _messages(value: Any, spec: Spec, cache: dict[str, str]) -> list[tuple[str, str, str]]:
    if not isinstance(value, list):
        if value is _MISSING or value is None:
            raise RecordError(f"{spec.messages}: missing")
        raise RecordError(f"{spec.messages}: expected a list of messages, got {_json_type(value)}")
    role_key, content_key = spec.role_key, spec.content_key
    out = []
    # The hot loop of ingest: field paths for reasons are only built on the error paths.
    for i, message in enumerate(value):
        if type(message) is not dict:
            raise RecordError(f"{spec.messages}[{i}]: expected an object, got {_json_type(message)}")
        role = message.get(role_key)
        if not isinstance(role, str):
            raise RecordError(f"{spec.messages}[{i}].{role_key}: expected text, got {_json_type(role)}")
        norm = cache.get(role)
        if norm is None:
            try:
                norm = cache[role] = normalise_role(role)
            except ValueError as error:
                raise RecordError(f"{spec.messages}[{i}].{role_key}: {error}") from None
        text = message.get(content_key)
        if type(text) is not str:
            text = _parts(text, f"{spec.messages}[{i}].{content_key}")
        out.append((role, norm, text))
    return out


def _correct(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if value is _MISSING:
        raise RecordError(f"{path}: missing")
    raise RecordError(f"{path}: expected 0/1 or a boolean, got {value!r:.60}")


def _optional_text(record: Any, path: str | None) -> str | None:
    if path is None:
        return None
    value = get(record, path)
    if value is _MISSING or value is None:
        return None
    return value if isinstance(value, str) else to_json(value, path)


def _question(record: Any, spec: Spec, messages: list[tuple[str, str, str]] | None) -> str:
    if spec.question_after and messages:
        first_user = next((text for _r, norm, text in messages if norm == "user"), "")
        if spec.question_after in first_user:
            return first_user.rsplit(spec.question_after, 1)[1].strip()
    value = get(record, spec.question)
    if value is _MISSING or value is None:
        raise RecordError(f"{spec.question}: missing")
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{spec.question}: expected non-empty text, got {value!r:.60}")
    return value


def _question_id(record: Any, spec: Spec, question: str) -> str:
    value = _MISSING if spec.question_id is None else get(record, spec.question_id)
    if value is _MISSING or value is None:
        return question_hash(question)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(f"{spec.question_id}: expected text or an integer, got {_json_type(value)}")
    return str(value)


def _answer(spec: Spec, record: Any, assistant: list[str], prof: markers.MarkerProfile) -> str | None:
    found = _optional_text(record, spec.answer)
    if found is not None or prof.answer is None:
        return found
    # MINT-style records keep no answer field: the last answer span (<solution>) is the run's answer,
    # wherever it sits (models also write it inside an <execute> block).
    return next((a for text in reversed(assistant) if (a := markers.answer_text(text, prof)) is not None), None)


def _cost(record: Any, spec: Spec) -> float | None:
    value = _MISSING if spec.cost is None else get(record, spec.cost)
    if value is _MISSING or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"{spec.cost}: expected a number, got {_json_type(value)}")
    return float(value)


def is_clean(correct: bool, has_messages: bool, parse_error: bool, max_steps: bool) -> bool:
    """The clean rule (ingest, generation and grading share it): correct, has messages, no parse
    error, no max steps; an execution error is kept (the run may recover from it)."""
    return correct and has_messages and not parse_error and not max_steps


def parse(record: Any, spec: Spec, cache: dict[str, str]) -> Parsed:
    """Read one record into rows; a RecordError names the field that could not be read."""
    if not isinstance(record, dict):
        raise RecordError(f"record: expected a JSON object, got {_json_type(record)}")
    model = _optional_text(record, spec.model)
    error = _optional_text(record, spec.error)
    if spec.failed_when_null is not None:
        log = get(record, spec.failed_when_null)
        if log is _MISSING:
            raise RecordError(f"{spec.failed_when_null}: missing")
        if log is None:
            question = _question(record, spec, None)
            return Parsed(
                _question_id(record, spec, question),
                question,
                _optional_text(record, spec.gold),
                None,
                model,
                error,
                failed=True,
            )
    messages = _messages(get(record, spec.messages), spec, cache)
    question = _question(record, spec, messages)
    question_id = _question_id(record, spec, question)
    correct = _correct(get(record, spec.correct), spec.correct)
    prof = markers.profile(spec.profile)
    assistant = [m["content"] for m in chat_messages((n, t) for _r, n, t in messages) if m["role"] == "assistant"]
    first_user = next((i for i, (_r, n, _t) in enumerate(messages) if n == "user"), -1)
    observed = [t for i, (_r, n, t) in enumerate(messages) if n in spec.observation_roles and i != first_user]
    flags = {f: any(m in t for m in found for t in observed) for f, found in spec.flag_markers}
    for flag, path, value in spec.flag_fields:
        flags[flag] = flags.get(flag, False) or get(record, path) == value
    flags = {f: flags.get(f, False) for f in FLAGS}
    row = {
        "teacher_model": model,
        "correct": correct,
        "generated_answer": _answer(spec, record, assistant, prof),
        **flags,
        "clean": is_clean(correct, bool(messages), flags["parse_error"], flags["max_steps"]),
        "assistant_turns": len(assistant),
        "tool_calls": markers.tool_calls(assistant, prof),
        "assistant_chars": sum(map(len, assistant)),
        "profile": spec.profile,
        "content_hash": hashlib.blake2b(orjson.dumps([(r, t) for r, _n, t in messages]), digest_size=16).hexdigest(),
        "cost": _cost(record, spec),
        "error": error,
    }
    return Parsed(
        question_id,
        question,
        _optional_text(record, spec.gold),
        _meta(record, spec),
        model,
        error,
        failed=False,
        row=row,
        messages=messages,
    )


def _meta(record: Any, spec: Spec) -> str | None:
    """The format's extra fields as one JSON object's text, each keyed by its last path step."""
    found = [(path, value) for path in spec.meta if (value := get(record, path)) is not _MISSING]
    if not found:
        return None
    # Written field by field so that a field too deep to store is named.
    return "{" + ",".join(f"{to_json(p.rsplit('.', 1)[-1], p)}:{to_json(v, p)}" for p, v in found) + "}"
