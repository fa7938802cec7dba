"""Replay: re-execute the code actions of stored trajectories in the sandbox, step by step with the
state carried over, and compare each new observation with the stored one.

What "reproduced" means depends on the runtime that wrote the log:

- smolagents logs (profiles `smolagents`, `smolagents_new`): the step's tool-response messages (the
  ones answering its call id: `Observation:` with the execution logs and last output, or `Error:`
  with the error) equal the sandbox's, whitespace normalised. Our executor is the same interpreter,
  so a difference means the log does not show what the code prints (or another library version).
- MINT logs (profile `mint`): MINT ran each action in an IPython shell and showed its captured
  output: what the code printed, then the repr of a last bare expression (in some runs behind an
  `Out[n]: ` prompt, which is dropped before comparing), stripped, or
  `[Executed Successfully with No Output]`, cut at 2,000 characters. A step whose stored output is
  such text is reproduced when the sandbox's output rendered the same way is equal, whitespace
  normalised. A step whose stored output is an IPython traceback is reproduced when the sandbox's
  step fails too: smolagents words errors in its own way (`InterpreterError: The variable `x` is not
  defined` for IPython's `NameError: name 'x' is not defined`), so error texts are not compared.

A step counts when the turn has an action (markers.action_code under the trajectory's profile) and
a stored observation follows it; every such step is executed, also after a mismatch.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import polars as pl

from .. import queries
from ..render import markers
from .sandbox import PythonSandbox, StepResult

_CALL_ID = re.compile(r"^Call id: \S+\n")
_MINT_FOOTER = re.compile(r"\n(You have \d+ steps? left|Expert feedback:).*\Z", re.DOTALL)
_MINT_TRACEBACK = re.compile(r"^-{20,}$|Traceback \(most recent call last\)|^\s*Cell In\[\d+\], line \d+", re.M)
# Some MINT runs show a displayed value behind IPython's output prompt ("Out[1]: 6.0").
_MINT_PROMPT = re.compile(r"^Out\[\d+\]: ", re.M)
MINT_EMPTY = "[Executed Successfully with No Output]"
MINT_CHARS = 2000


@dataclass(frozen=True)
class Step:
    """One code action of a stored trajectory and the observation stored after it."""

    code: str
    stored: str


@dataclass(frozen=True)
class Replay:
    """The outcome of replaying one trajectory (a row of the `replays` table)."""

    trajectory_id: str
    steps: int
    reproduced: int
    first_mismatch: int | None
    reason: str | None


def normalise(text: str) -> str:
    """Whitespace-insensitive form used for every comparison."""
    return " ".join(text.split())


def _clip(text: str, n: int = 80) -> str:
    text = normalise(text)
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def code_steps(messages: Sequence[tuple[str, str]], profile: str) -> list[Step]:
    """The code steps of a trajectory from its raw (norm_role, text) messages, in order."""
    prof = markers.profile(profile)
    mint = profile == "mint"
    steps = []
    for i, (role, text) in enumerate(messages):
        if role != "assistant" or (code := markers.action_code(text, prof)) is None:
            continue
        replies = []
        for next_role, next_text in messages[i + 1 :]:
            if next_role == "assistant":
                break
            if mint and next_role == "user" and next_text.startswith("Observation:"):
                replies.append(next_text)
                break
            if not mint and next_role == "tool-response" and _CALL_ID.match(next_text):
                replies.append(_CALL_ID.sub("", next_text))
        if replies:
            steps.append(Step(code, "\n".join(replies)))
    return steps


def smolagents_mismatch(step: Step, result: StepResult) -> str | None:
    """None when the tool responses match the stored ones; else why not."""
    ours = "\n".join(_CALL_ID.sub("", text) for text in result.tool_responses("call"))
    if normalise(ours) == normalise(step.stored):
        return None
    return f"stored {_clip(step.stored)}, replay {_clip(ours)}"


def mint_output(code: str, result: StepResult) -> str:
    """What MINT's IPython tool would have shown for a step that ran without an error."""
    shown = result.logs
    if result.value_repr not in (None, "None") and _displays_last_value(code):
        shown += result.value_repr + "\n"
    shown = shown.strip() or MINT_EMPTY
    return shown if len(shown) <= MINT_CHARS else shown[:MINT_CHARS] + "...\n[Output Truncated]"


def _displays_last_value(code: str) -> bool:
    """IPython echoes the value of a cell whose last statement is a bare expression (no `;`)."""
    tree = markers.python_ast(code)
    body = tree.body if tree is not None else []
    return bool(body) and isinstance(body[-1], ast.Expr) and not code.rstrip().endswith(";")


def mint_mismatch(step: Step, result: StepResult) -> str | None:
    """None when the step reproduces the stored MINT observation; else why not."""
    stored = _MINT_FOOTER.sub("", step.stored.removeprefix("Observation:\n")).strip()
    stored = _MINT_PROMPT.sub("", stored)
    stored_failed = bool(_MINT_TRACEBACK.search(stored))
    if result.error is not None:
        return None if stored_failed else f"replay failed ({_clip(result.error, 120)}), stored {_clip(stored)}"
    ours = mint_output(step.code, result)
    if stored_failed:
        return f"stored an error, replay ran: {_clip(ours)}"
    if normalise(ours) == normalise(stored):
        return None
    return f"stored {_clip(stored)}, replay {_clip(ours)}"


def mismatch_rule(profile: str) -> Callable[[Step, StepResult], str | None]:
    """The comparison for trajectories of one marker profile."""
    return mint_mismatch if profile == "mint" else smolagents_mismatch


def replay(sandbox: PythonSandbox, trajectories: Iterable[tuple[str, str, list[Step]]]) -> list[Replay]:
    """Replay (trajectory_id, profile, steps) together: round r runs every trajectory's step r as
    one sandbox batch, each trajectory in its own run."""
    todo = list(trajectories)
    handles = {tid: sandbox.open() for tid, _, steps in todo if steps}
    outcome: dict[str, list[str | None]] = {tid: [] for tid, _, _ in todo}
    try:
        for r in range(max((len(steps) for _, _, steps in todo), default=0)):
            batch = [(tid, profile, steps[r]) for tid, profile, steps in todo if len(steps) > r]
            results = sandbox.run([(handles[tid], step.code) for tid, _, step in batch])
            for (tid, profile, step), result in zip(batch, results):
                outcome[tid].append(mismatch_rule(profile)(step, result))
    finally:
        for handle in handles.values():
            sandbox.release(handle)
    return [_summarise(tid, outcome[tid]) for tid, _, _ in todo]


def _summarise(trajectory_id: str, mismatches: list[str | None]) -> Replay:
    first = next((i for i, why in enumerate(mismatches) if why is not None), None)
    reason = None if first is None else f"step {first}: {mismatches[first]}"
    reproduced = sum(why is None for why in mismatches)
    return Replay(trajectory_id, len(mismatches), reproduced, first, reason)


def replay_settings(sandbox: PythonSandbox) -> str:
    """A hash of what decides a replay's outcome: the sandbox's limits, imports and tools, the agent
    runtime's code and smolagents' version. A rerun under the same settings skips what it replayed."""
    from importlib.metadata import version

    from ..versions import code_version
    from .generate import AGENT_CODE

    tools = {name: getattr(tool, "provenance", name) for name, tool in sorted(sandbox.tools.items())}
    key = {
        "limits": asdict(sandbox.limits),
        "imports": sandbox.authorized_imports,
        "tools": tools,
        "code": code_version(*AGENT_CODE),
        "smolagents": version("smolagents"),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def replay_store(
    store,
    sandbox: PythonSandbox,
    dataset: str | None = None,
    ids: Sequence[str] | None = None,
    chunk: int = 64,
    progress: bool = False,
    again: bool = False,
):
    """Replay the store's trajectories (one data set, some ids, or all) into `replays`, `chunk`
    trajectories at a time (each chunk one transaction: an interrupted replay keeps what finished).
    Trajectories already replayed under the same settings are skipped unless `again`.
    Returns (the per-data-set summary of sql/replay/summary.sql, how many were skipped)."""
    from tqdm import tqdm

    settings = replay_settings(sandbox)
    found = store.run(
        "replay/trajectories", dataset=dataset, ids=list(ids) if ids else None, settings=None if again else settings
    ).rows()
    if not found:
        raise ValueError("no trajectories to replay" + (f" in data set {dataset!r}" if dataset else ""))
    targets = [(tid, profile) for tid, profile, done in found if not done]
    bar = tqdm(total=len(targets), unit="traj", desc="replay", disable=not progress)
    for start in range(0, len(targets), chunk):
        part = targets[start : start + chunk]
        messages: dict[str, list[tuple[str, str]]] = {tid: [] for tid, _ in part}
        for tid, role, text in store.run("replay/messages", ids=list(messages)).rows():
            messages[tid].append((role, text))
        outcomes = replay(sandbox, [(tid, profile, code_steps(messages[tid], profile)) for tid, profile in part])
        rows = pl.DataFrame(outcomes, schema=list(Replay.__dataclass_fields__), orient="row")
        with store.transaction() as con:
            con.register("new_replays", rows)
            con.execute(queries.sql_text("replay/record"), {"settings": settings})
            con.unregister("new_replays")
        bar.update(len(part))
    bar.close()
    return store.run("replay/summary", dataset=dataset, ids=list(ids) if ids else None), len(found) - len(targets)
