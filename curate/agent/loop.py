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

The model sees the chat view of the transcript (render.chat_messages: tool calls dropped,
tool responses as user turns), as the release's vLLM client sent it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import markers
from ..render import chat_messages
from .backends import Backend, Completion, GenRequest
from .prompts import Prompts
from .sandbox import RETRY, PythonSandbox

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


def run_agents(tasks: Iterable[Task], backend: Backend, sandbox: PythonSandbox, config: AgentConfig,
               slots: int = 16) -> Iterator[AgentRun]:
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
            completions = backend.generate([_request(run, config, prof) for run in active])
            actions = [(run, code) for run, c in zip(active, completions)
                       if (code := _take(run, c, config, prof)) is not None]
            if actions:
                results = sandbox.run([(run.handle, code) for run, code in actions])
                for (run, code), result in zip(actions, results):
                    call = f"call_{run.steps}"
                    tool = [{"id": call, "type": "function", "function": {"name": "python_interpreter", "arguments": code}}]
                    run.messages.append(("tool-call", f"Calling tools:\n{tool!r}"))
                    run.messages.extend(("tool-response", text) for text in result.tool_responses(call))
                    if result.is_final:
                        _finish(run, "final_answer", result.final_answer)
            for run in active:
                if not run.done and run.final_request is None and run.steps >= config.max_steps:
                    _reach_limit(run, config)
            for run in [r for r in active if r.done]:
                sandbox.release(run.handle)
                yield run
            active = [r for r in active if not r.done]
    finally:
        for run in active:
            sandbox.release(run.handle)


def _start(task: Task, config: AgentConfig, sandbox: PythonSandbox) -> AgentRun:
    messages = [("system", config.prompts.system), ("user", config.prompts.task_message(task.question))]
    return AgentRun(task, messages, handle=sandbox.open())


def _chat(messages: list[tuple[str, str]]) -> tuple[dict[str, str], ...]:
    return tuple(chat_messages(messages, keep_last_user=True))


def _request(run: AgentRun, config: AgentConfig, prof: markers.MarkerProfile) -> GenRequest:
    """The run's next generation: its next action, or its answer once the step limit is reached."""
    if run.final_request is not None:
        return GenRequest(run.final_request, config.max_new_tokens, config.temperature, config.top_p,
                          derive_seed(run.task.seed, "answer"))
    return GenRequest(_chat(run.messages), config.max_new_tokens, config.temperature, config.top_p,
                      derive_seed(run.task.seed, run.steps), prof.stop,
                      run.task.prefix if run.steps == 0 else "")


def _take(run: AgentRun, completion: Completion, config: AgentConfig, prof: markers.MarkerProfile) -> str | None:
    """Record a completion; the code to execute, or None (parse error, an answer, or the run ended)."""
    run.tokens += completion.tokens
    if run.final_request is not None:
        _finish(run, "max_steps", completion.text.strip())
        return None
    text = markers.step_text((run.task.prefix if run.steps == 0 else "") + completion.text, prof)
    run.steps += 1
    run.messages.append(("assistant", text))
    code = markers.action_code(text, prof)
    if code is not None:
        return code
    if (answer := markers.answer_text(text, prof)) is not None:
        _finish(run, "answer", answer)
        return None
    run.messages.append(("tool-response", _parse_error(prof)))
    return None


def _parse_error(prof: markers.MarkerProfile) -> str:
    return (f"Error:\nError in code parsing:\nNo code found in your output. Write your code as:\n{prof.example}\n"
            f"Make sure to provide correct code blobs.\n{RETRY}")


def _reach_limit(run: AgentRun, config: AgentConfig) -> None:
    """The step limit: ask for an answer without tools (before the limit's error, as smolagents does)."""
    if config.answer_at_max_steps:
        history = [(r, t) for r, t in run.messages[1:]]
        run.final_request = _chat([("system", config.prompts.final_answer_system), *history,
                                   ("user", config.prompts.final_answer_message(run.task.question))])
    run.messages.append(("tool-response", MAX_STEPS_ERROR))
    if not config.answer_at_max_steps:
        _finish(run, "max_steps", None)


def _finish(run: AgentRun, reason: str, answer: str | None) -> None:
    run.stop_reason, run.final_answer, run.finished = reason, answer, time.time()
