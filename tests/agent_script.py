"""A scripted model for agent-loop tests: the test double stands in for the model only (the sandbox,
store and graders are real). It answers each request from a per-question list of step outputs and
records every batch it was asked for. Also: kill -9 of a job at a point it announces."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Callable, Sequence

from curate.agent.backends import Completion, GenRequest


def task_question(request: GenRequest) -> str:
    """The question of a run's request: the line after `New task:` in its first user message."""
    first_user = next(m["content"] for m in request.messages if m["role"] == "user")
    return first_user.split("New task:\n", 1)[-1].split("\n", 1)[0]


class ScriptedModel:
    """Per question, the text of each step (indexed by the assistant turns so far); answers asked for
    after the step limit (no stop strings) get `after_limit`, first-thought requests `first_thought`."""

    name = "scripted"
    model_id = "scripted-teacher"

    def __init__(
        self,
        steps: dict[str, Sequence[str] | Callable[[GenRequest, int], str]],
        after_limit: str = "my best guess",
        first_thought: str = "Let me think.\n\n",
    ) -> None:
        self.steps, self.after_limit, self.first_thought = steps, after_limit, first_thought
        self.batches: list[list[GenRequest]] = []

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        self.batches.append(list(requests))
        out = []
        for r in requests:
            if r.stop == ("\n\n",):  # the tool-free answer behind a first-thought prefix
                text = self.first_thought
            elif not r.stop:
                text = self.after_limit
            else:
                script = self.steps[task_question(r)]
                n = sum(m["role"] == "assistant" for m in r.messages)
                text = script(r, n) if callable(script) else script[min(n, len(script) - 1)]
                text = text.removeprefix(r.prefix) if n == 0 else text
            out.append(Completion(text, len(text.split()), "stop"))
        return out

    def close(self) -> None:
        pass


def code_step(code: str, thought: str = "I will compute it.") -> str:
    """One smolagents step as a model writes it."""
    return f"Thought: {thought}\nCode:\n```py\n{code}\n```<end_code>"


def kill_when_paused(argv: list[str], paused: str, seconds: float = 600) -> None:
    """Start the command, wait until it prints the line `paused` on stderr (and waits to be killed),
    then kill -9 it; the stderr read so far explains a job that never got there."""
    job = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    found = threading.Event()

    def read() -> None:  # in a thread, so a job that never says it cannot hang the test
        for text in job.stderr:
            seen.append(text)
            if text.strip() == paused:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    found.wait(seconds)
    assert job.poll() is None and seen[-1:] == [paused + "\n"], "".join(seen)[-2000:]
    job.kill()
    job.wait()
    assert job.returncode == -signal.SIGKILL
