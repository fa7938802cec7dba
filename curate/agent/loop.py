"""The CodeAct loop: every in-flight run advances one step per round, together.

A round is ONE batched `backend.generate` over every active run (its next action, or its answer
after the step limit), then one `sandbox.run` batch executing every action in parallel workers.
A run that ends frees its slot for the next task. Transcripts are the smolagents 1.13 log messages
the release wrote (system, user `New task:`, then per step assistant / tool-call / tool-response),
with its error texts, so ingest's flags and the clean rule read generated runs as they read logs:

- no code in the output: `Error in code parsing` (tool-response, no tool call);
- the code fails: the sandbox's `Code execution failed ...` error (the run goes on);
- no final answer after `max_steps` steps: `Reached max steps.`, then (as smolagents does) the
  model is asked once more, without tools, for an answer.

Self-consistent action generation (agent-distillation's test-time method, `candidates` > 1): each
step samples N candidate actions (temperature 0.4, top-p 0.8 by default) in the same batched call,
runs each in its own fork of the run's sandbox state (the release ran them one after another in
one shared executor, so a candidate's variables and side effects leaked into the next), drops the
ones that fail (no code, or an execution error), and keeps the first candidate of the largest group
with the same outcome (the observation; for a `final_answer` call, the answer). The kept
candidate's fork becomes the run's state: nothing is executed twice. When no candidate passes, the
first one is kept with its error, as the release does, so the run sees the error and goes on.

The model sees the chat view of the transcript (render.chat_messages: tool calls dropped,
tool responses as user turns), as the release's vLLM client sent it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..render import chat_messages, markers
from .backends import Backend, Completion, GenRequest
from .prompts import Prompts
from .sandbox import RETRY, PythonSandbox, StepResult

MAX_STEPS_ERROR = f"Error:\nReached max steps.\n{RETRY}"


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts (base seed, question id, sample index, step ...), stable across runs."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


@dataclass(frozen=True)
class AgentConfig:
    """How runs are sampled and bounded."""

    prompts: Prompts
    profile: str = "smolagents"
    max_steps: int = 5
    max_new_tokens: int = 1024
    temperature: float = 1.0
    top_p: float = 1.0
    answer_at_max_steps: bool = True  # ask for an answer after the step limit (smolagents' provide_final_answer)
    candidates: int = 1  # > 1: self-consistent action generation with this many candidates per step
    candidate_temperature: float = 0.4  # how candidates are sampled (the release's setting)
    candidate_top_p: float = 0.8


@dataclass(frozen=True)
class Task:
    """One run to do: a question, its seed, and text the first Thought starts with (may be empty)."""

    key: Any  # the caller's id for the run, e.g. (question_id, sample_idx)
    question: str
    seed: int
    prefix: str = ""


@dataclass
class AgentRun:
    """A run's transcript and outcome."""

    task: Task
    messages: list[tuple[str, str]]  # (role, text) in the smolagents vocabulary
    final_answer: str | None = None
    steps: int = 0  # model actions taken (the answer after the step limit not counted)
    tokens: int = 0  # generated tokens, every call of the run included
    stop_reason: str | None = None  # final_answer | answer | max_steps
    started: float = field(default_factory=time.time)
    finished: float | None = None
    handle: int | None = None
    final_request: tuple[dict[str, str], ...] | None = None  # set once the step limit is reached

    @property
    def done(self) -> bool:
        return self.stop_reason is not None


def run_agents(
    tasks: Iterable[Task], backend: Backend, sandbox: PythonSandbox, config: AgentConfig, slots: int = 16
) -> Iterator[AgentRun]:
    """Run every task to its end, at most `slots` at once; yield each run as it finishes."""
    prof = markers.profile(config.profile)
    pending = iter(tasks)
    active: list[AgentRun] = []
    try:
        while True:
            while len(active) < slots and (task := next(pending, None)) is not None:
                active.append(_start(task, config, sandbox))
            if not active:
                return
            requests = [_requests(run, config, prof) for run in active]
            completions = iter(backend.generate([r for rs in requests for r in rs]))
            stepping = []
            for run, rs in zip(active, requests):
                done = [next(completions) for _ in rs]
                run.tokens += sum(c.tokens for c in done)
                if run.final_request is not None:
                    _finish(run, "max_steps", done[0].text.strip())
                else:
                    stepping.append((run, [_read(run, c, prof) for c in done]))
            _execute(stepping, sandbox)
            for run, candidates in stepping:
                _record(run, _adopt(run, candidates, sandbox) if len(candidates) > 1 else candidates[0], prof)
            for run in active:
                if not run.done and run.final_request is None and run.steps >= config.max_steps:
                    _reach_limit(run, config)
            finished = [r for r in active if r.done]
            active = [r for r in active if not r.done]
            for run in finished:  # before any yield: a caller that stops at one must not release it again
                sandbox.release(run.handle)
            yield from finished
    finally:
        for run in active:
            sandbox.release(run.handle)


def _start(task: Task, config: AgentConfig, sandbox: PythonSandbox) -> AgentRun:
    messages = [("system", config.prompts.system), ("user", config.prompts.task_message(task.question))]
    return AgentRun(task, messages, handle=sandbox.open())


def _chat(messages: list[tuple[str, str]]) -> tuple[dict[str, str], ...]:
    return tuple(chat_messages(messages, keep_last_user=True))


@dataclass
class _Candidate:
    """One generated action of a step: its text, the code it runs (or the answer it gives), the outcome."""

    text: str
    code: str | None
    answer: str | None
    handle: int | None = None  # the sandbox state it ran in
    result: StepResult | None = None

    @property
    def passed(self) -> bool:
        """An answer, or code that ran without error."""
        return self.answer is not None if self.code is None else self.result.error is None

    @property
    def outcome(self) -> tuple[str, str | None]:
        """What the vote compares: the answer given, or the code's observation."""
        if self.code is None:
            return ("answer", self.answer)
        return ("final", self.result.final_answer) if self.result.is_final else ("output", self.result.observation)


def _requests(run: AgentRun, config: AgentConfig, prof: markers.MarkerProfile) -> list[GenRequest]:
    """The run's next generations: its next action (or candidates), or its answer after the step limit."""
    if run.final_request is not None:
        return [
            GenRequest(
                run.final_request,
                config.max_new_tokens,
                config.temperature,
                config.top_p,
                derive_seed(run.task.seed, "answer"),
            )
        ]
    chat, prefix = _chat(run.messages), run.task.prefix if run.steps == 0 else ""
    if config.candidates == 1:
        return [
            GenRequest(
                chat,
                config.max_new_tokens,
                config.temperature,
                config.top_p,
                derive_seed(run.task.seed, run.steps),
                prof.stop,
                prefix,
            )
        ]
    return [
        GenRequest(
            chat,
            config.max_new_tokens,
            config.candidate_temperature,
            config.candidate_top_p,
            derive_seed(run.task.seed, run.steps, j),
            prof.stop,
            prefix,
        )
        for j in range(config.candidates)
    ]


def _read(run: AgentRun, completion: Completion, prof: markers.MarkerProfile) -> _Candidate:
    text = markers.step_text((run.task.prefix if run.steps == 0 else "") + completion.text, prof)
    code = markers.action_code(text, prof)
    return _Candidate(text, code, markers.answer_text(text, prof) if code is None else None)


def _execute(stepping: list[tuple[AgentRun, list[_Candidate]]], sandbox: PythonSandbox) -> None:
    """Run every candidate's code in one sandbox batch: a lone one in its run's state, several each in a fork."""
    ran = []
    for run, candidates in stepping:
        for c in candidates:
            if c.code is not None:
                c.handle = run.handle if len(candidates) == 1 else sandbox.fork(run.handle)
                ran.append(c)
    if ran:
        for c, result in zip(ran, sandbox.run([(c.handle, c.code) for c in ran])):
            c.result = result


def _adopt(run: AgentRun, candidates: list[_Candidate], sandbox: PythonSandbox) -> _Candidate:
    """The vote: the first candidate of the largest group of passing candidates with one outcome (none
    passing: the first candidate); its state becomes the run's, every other fork is released."""
    groups: dict[tuple[str, str | None], list[_Candidate]] = {}
    for c in candidates:
        if c.passed:
            groups.setdefault(c.outcome, []).append(c)
    kept = max(groups.values(), key=len)[0] if groups else candidates[0]
    if kept.handle is not None:
        sandbox.release(run.handle)
        run.handle = kept.handle
    for c in candidates:
        if c.handle is not None and c is not kept:
            sandbox.release(c.handle)
    return kept


def _record(run: AgentRun, step: _Candidate, prof: markers.MarkerProfile) -> None:
    """Add the step to the transcript: the action, then its tool call and observation, an answer, or a parse error."""
    run.steps += 1
    run.messages.append(("assistant", step.text))
    if step.code is not None:
        call = f"call_{run.steps}"
        tool = [{"id": call, "type": "function", "function": {"name": "python_interpreter", "arguments": step.code}}]
        run.messages.append(("tool-call", f"Calling tools:\n{tool!r}"))
        run.messages.extend(("tool-response", text) for text in step.result.tool_responses(call))
        if step.result.is_final:
            _finish(run, "final_answer", step.result.final_answer)
    elif step.answer is not None:
        _finish(run, "answer", step.answer)
    else:
        run.messages.append(("tool-response", _parse_error(prof)))


def _parse_error(prof: markers.MarkerProfile) -> str:
    return (
        f"Error:\nError in code parsing:\nNo code found in your output. Write your code as:\n{prof.example}\n"
        f"Make sure to provide correct code blobs.\n{RETRY}"
    )


def _reach_limit(run: AgentRun, config: AgentConfig) -> None:
    """The step limit: ask for an answer without tools (before the limit's error, as smolagents does)."""
    if config.answer_at_max_steps:
        history = [(r, t) for r, t in run.messages[1:]]
        run.final_request = _chat(
            [
                ("system", config.prompts.final_answer_system),
                *history,
                ("user", config.prompts.final_answer_message(run.task.question)),
            ]
        )
    run.messages.append(("tool-response", MAX_STEPS_ERROR))
    if not config.answer_at_max_steps:
        _finish(run, "max_steps", None)


def _finish(run: AgentRun, reason: str, answer: str | None) -> None:
    run.stop_reason, run.final_answer, run.finished = reason, answer, time.time()
