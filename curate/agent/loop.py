"""The CodeAct loop: every in-flight run advances on its own, the engine and the python tool kept busy.

A run is a chain: its request goes to the backend; its completion's code goes to the sandbox; its
observation makes its next request, which goes back to the backend at once. No run waits for
another. With a backend that streams (`StreamingBackend`: vLLM's engine, an OpenAI-compatible
server), a run whose completion arrives goes to the sandbox while the others keep generating, and
its next request enters the engine as soon as its observation is back, so continuous batching
gets a steady stream. The sandbox runs in a thread of its own (`_Tools`): each of its batches
holds every step queued since the last one began, run in parallel workers. A backend that only
generates in batches (the transformers backend) gets every waiting request in one call whenever no
code is running: the round-by-round loop, its batches as they always were (`_Rounds`). A run that
ends frees its slot for the next task.

Samples do not depend on the interleaving: a request's seed derives from its run's seed and step
(`derive_seed`), a run's transcript only from its own completions and observations, and each run's
code runs in its own sandbox state. However completions arrive, the same seeds give the same runs.

Transcripts are the smolagents 1.13 log messages the release wrote (system, user `New task:`, then
per step assistant / tool-call / tool-response), with its error texts, so ingest's flags and the
clean rule read generated runs as they read logs:

- no code in the output: `Error in code parsing` (tool-response, no tool call);
- the code fails: the sandbox's `Code execution failed ...` error (the run goes on);
- no final answer after `max_steps` steps: `Reached max steps.`, then (as smolagents does) the
  model is asked once more, without tools, for an answer.

Self-consistent action generation (agent-distillation's test-time method, `candidates` > 1): each
step samples N candidate actions (temperature 0.4, top-p 0.8 by default), runs each in its own fork
of the run's sandbox state (the release ran them one after another in one shared executor, so a
candidate's variables and side effects leaked into the next), drops the ones that fail (no code, or
an execution error), and keeps the first candidate of the largest group with the same outcome (the
observation; for a `final_answer` call, the answer). The kept candidate's fork becomes the run's
state: nothing is executed twice. When no candidate passes, the first one is kept with its error,
as the release does, so the run sees the error and goes on.

The model sees the chat view of the transcript (render.chat_messages: tool calls dropped,
tool responses as user turns), as the release's vLLM client sent it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Generator, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

from ..render import chat_messages, markers
from .backends import Backend, Completion, GenRequest, StreamingBackend
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
    handle: int | None = None  # its state in the sandbox, opened when its first code runs
    final_request: tuple[dict[str, str], ...] | None = None  # set once the step limit is reached

    @property
    def done(self) -> bool:
        return self.stop_reason is not None


@dataclass(eq=False)
class _Flight:
    """A run in flight: what it waits for (its completions, or its step's code) and when it started."""

    run: AgentRun
    order: int  # runs started before it come first in a batch-only backend's call
    waiting: list[Future[Any]] = field(default_factory=list)
    candidates: list[_Candidate] | None = None  # set while the step's code runs


def run_agents(
    tasks: Iterable[Task], backend: Backend, sandbox: PythonSandbox, config: AgentConfig, slots: int = 16
) -> Generator[AgentRun, None, None]:
    """Run every task to its end, at most `slots` at once; yield each run as it finishes (close it to stop early)."""
    prof = markers.profile(config.profile)
    engine = _Streamed(backend) if isinstance(backend, StreamingBackend) else _Rounds(backend)
    pending = iter(tasks)
    flights: dict[Future[Any], _Flight] = {}  # each future a run waits for -> that run
    started = 0
    tools = _Tools(sandbox)
    # The backend's first error. It is raised once the code steps already running have ended: a run
    # whose completion came before the error is not lost when its code was still running.
    failed: BaseException | None = None
    dropped: list[AgentRun] = []  # runs given up after it: their sandbox state is freed at the end

    def ask(flight: _Flight) -> None:
        flight.waiting = [engine.submit(r, flight.order) for r in _requests(flight.run, config, prof)]
        flights.update(dict.fromkeys(flight.waiting, flight))

    try:
        while True:
            while failed is None and len(set(flights.values())) < slots and (task := next(pending, None)) is not None:
                ask(_Flight(_start(task, config), started))
                started += 1
            if failed is not None:
                for future in [f for f, flight in flights.items() if flight.candidates is None]:
                    future.cancel()  # a run that needs the backend again is left to the rerun
                    dropped.append(flights.pop(future).run)
            if not flights:
                if failed is not None:
                    raise failed
                return
            if not any(f.candidates is not None for f in flights.values()):
                engine.flush()  # no code running: a batch-only backend generates every waiting request now
            done, _ = wait(flights, return_when=FIRST_COMPLETED)
            finished = []
            for flight in sorted({flights.pop(f) for f in done}, key=lambda f: f.order):
                if any(f in flights for f in flight.waiting):
                    continue  # another of its candidates is still generating
                if flight.candidates is None and (error := _error(flight.waiting)) is not None:
                    failed = failed or error
                    dropped.append(flight.run)
                    continue
                run, results = flight.run, [f.result() for f in flight.waiting]
                if flight.candidates is None:
                    run.tokens += sum(c.tokens for c in results)
                    if run.final_request is not None:
                        _finish(run, "max_steps", results[0].text.strip())
                    else:
                        candidates = [_read(run, c, prof) for c in results]
                        if any(c.code is not None for c in candidates):
                            flight.candidates, flight.waiting = candidates, [tools.step(run, candidates)]
                            flights[flight.waiting[0]] = flight
                            continue
                        _step(run, _vote(candidates), config, prof)
                else:
                    flight.candidates = None
                    _step(run, results[0], config, prof)
                if run.done:
                    tools.release(run)  # before any yield: a caller that stops at one must not release it again
                    finished.append(run)
                elif failed is None:
                    ask(flight)
                else:
                    dropped.append(run)
            tools.start()
            yield from finished
    finally:
        for future in flights:
            future.cancel()  # a streaming backend drops the requests no run waits for any more
        tools.close([*(f.run for f in flights.values()), *dropped])


def _error(futures: list[Future[Any]]) -> BaseException | None:
    """The first error among a run's finished completions."""
    return next((e for f in futures if (e := f.exception()) is not None), None)


class _Rounds:
    """A backend that only generates in batches: requests wait, and `flush` generates all of them in
    one call, in the order their runs started."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.waiting: list[tuple[int, GenRequest, Future[Completion]]] = []

    def submit(self, request: GenRequest, order: int) -> Future[Completion]:
        future: Future[Completion] = Future()
        self.waiting.append((order, request, future))
        return future

    def flush(self) -> None:
        """Generate every waiting request in one call."""
        waiting = sorted(self.waiting, key=lambda w: w[0])  # stable: a run's candidates stay in order
        self.waiting = []
        if waiting:
            for (_, _, future), completion in zip(waiting, self.backend.generate([r for _, r, _ in waiting])):
                future.set_result(completion)


class _Streamed:
    """A streaming backend: each request enters the engine the moment it is made."""

    def __init__(self, backend: StreamingBackend) -> None:
        self.backend = backend

    def submit(self, request: GenRequest, order: int) -> Future[Completion]:
        return self.backend.submit(request)

    def flush(self) -> None:
        """Nothing waits: the engine has every request already."""


class _Tools:
    """The sandbox, driven by one thread of its own (the sandbox is not thread-safe): each batch it runs
    holds every step queued since the last one began; runs are opened and released there too."""

    def __init__(self, sandbox: PythonSandbox) -> None:
        self.sandbox = sandbox
        self.staged: list[tuple[AgentRun, list[_Candidate], Future[_Candidate]]] = []
        self.steps: list[tuple[AgentRun, list[_Candidate], Future[_Candidate]]] = []
        self.releases: list[AgentRun] = []
        self.left: list[AgentRun] | None = None  # set at close: the runs still in flight, released last
        self.failed: BaseException | None = None
        self.ready = threading.Condition()
        self.thread = threading.Thread(target=self._serve, name="curate-sandbox", daemon=True)
        self.thread.start()

    def step(self, run: AgentRun, candidates: list[_Candidate]) -> Future[_Candidate]:
        """Run the candidates' code (at the next `start`); the future gives the candidate the run keeps."""
        future: Future[_Candidate] = Future()
        self.staged.append((run, candidates, future))
        return future

    def release(self, run: AgentRun) -> None:
        """Free a finished run's sandbox state (after anything queued for it)."""
        with self.ready:
            self.releases.append(run)
            self.ready.notify()

    def start(self) -> None:
        """Hand the steps staged since the last start to the thread, as one batch where it is free."""
        with self.ready:
            self.steps += self.staged
            self.staged = []
            self.ready.notify()

    def close(self, left: list[AgentRun]) -> None:
        """Drop the steps not yet run, release the runs `left` in flight, and stop the thread."""
        with self.ready:
            self.left = left
            self.ready.notify()
        self.thread.join()

    def _serve(self) -> None:
        while True:
            with self.ready:
                while not (self.steps or self.releases or self.left is not None):
                    self.ready.wait()
                steps, releases, left = self.steps, self.releases, self.left
                self.steps, self.releases = [], []
            if left is not None:
                for _, _, future in steps:
                    future.cancel()
                # Best effort: when the sandbox broke, its error is already on its way to the caller.
                self._free([*releases, *left], quiet=True)
                return
            self._free(releases)
            if steps:
                self._run(steps)

    def _free(self, runs: list[AgentRun], quiet: bool = False) -> None:
        for run in runs:
            if run.handle is not None:
                try:
                    self.sandbox.release(run.handle)
                except Exception as error:  # noqa: BLE001 - the next step raises it; at close it is dropped
                    if not quiet and self.failed is None:
                        self.failed = error
                run.handle = None

    def _run(self, steps: list[tuple[AgentRun, list[_Candidate], Future[_Candidate]]]) -> None:
        # A step whose run the loop dropped is skipped; once running, the loop can no longer cancel one.
        steps = [step for step in steps if step[2].set_running_or_notify_cancel()]
        if not steps:
            return
        try:
            if self.failed is not None:
                raise self.failed
            for run, _, _ in steps:
                if run.handle is None:
                    run.handle = self.sandbox.open()
            _execute([(run, candidates) for run, candidates, _ in steps], self.sandbox)
            kept = [_adopt(run, c, self.sandbox) if len(c) > 1 else c[0] for run, c, _ in steps]
        except BaseException as error:  # noqa: BLE001 - the loop raises it where it waits for these steps
            self.failed = error
            for _, _, future in steps:
                future.set_exception(error)
            return
        for (_, _, future), candidate in zip(steps, kept):
            future.set_result(candidate)


def _start(task: Task, config: AgentConfig) -> AgentRun:
    messages = [("system", config.prompts.system), ("user", config.prompts.task_message(task.question))]
    return AgentRun(task, messages)


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
    def ran(self) -> StepResult:
        """What its code did (every candidate with code has run, in `_execute`, before it is read)."""
        if self.result is None:
            raise RuntimeError("a candidate's code was read before it ran")
        return self.result

    @property
    def passed(self) -> bool:
        """An answer, or code that ran without error."""
        return self.answer is not None if self.code is None else self.ran.error is None

    @property
    def outcome(self) -> tuple[str, str | None]:
        """What the vote compares: the answer given, or the code's observation."""
        if self.code is None:
            return ("answer", self.answer)
        return ("final", self.ran.final_answer) if self.ran.is_final else ("output", self.ran.observation)


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
    ran, steps = [], []
    for run, candidates in stepping:
        assert run.handle is not None  # opened before its first step
        for c in candidates:
            if c.code is not None:
                c.handle = handle = run.handle if len(candidates) == 1 else sandbox.fork(run.handle)
                ran.append(c)
                steps.append((handle, c.code))
    if ran:
        for c, result in zip(ran, sandbox.run(steps)):
            c.result = result


def _vote(candidates: list[_Candidate]) -> _Candidate:
    """The first candidate of the largest group of passing candidates with one outcome (none passing: the first)."""
    groups: dict[tuple[str, str | None], list[_Candidate]] = {}
    for c in candidates:
        if c.passed:
            groups.setdefault(c.outcome, []).append(c)
    return max(groups.values(), key=len)[0] if groups else candidates[0]


def _adopt(run: AgentRun, candidates: list[_Candidate], sandbox: PythonSandbox) -> _Candidate:
    """The vote's candidate; its state becomes the run's, every other fork is released."""
    kept = _vote(candidates)
    if kept.handle is not None and run.handle is not None:
        sandbox.release(run.handle)
        run.handle = kept.handle
    for c in candidates:
        if c.handle is not None and c is not kept:
            sandbox.release(c.handle)
    return kept


def _step(run: AgentRun, step: _Candidate, config: AgentConfig, prof: markers.MarkerProfile) -> None:
    """Record the step; at the step limit, ask for the answer."""
    _record(run, step, prof)
    if not run.done and run.steps >= config.max_steps:
        _reach_limit(run, config)


def _record(run: AgentRun, step: _Candidate, prof: markers.MarkerProfile) -> None:
    """Add the step to the transcript: the action, then its tool call and observation, an answer, or a parse error."""
    run.steps += 1
    run.messages.append(("assistant", step.text))
    if step.code is not None:
        call = f"call_{run.steps}"
        tool = [{"id": call, "type": "function", "function": {"name": "python_interpreter", "arguments": step.code}}]
        run.messages.append(("tool-call", f"Calling tools:\n{tool!r}"))
        run.messages.extend(("tool-response", text) for text in step.ran.tool_responses(call))
        if step.ran.is_final:
            _finish(run, "final_answer", step.ran.final_answer)
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
