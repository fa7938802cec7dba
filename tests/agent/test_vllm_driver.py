"""The vLLM backend's driver without vLLM: a stand-in engine with vLLM's LLMEngine calls (add_request,
step, has_unfinished_requests, abort_request). Requests enter between steps while others generate,
each resolves as it finishes, a cancelled one is aborted, a refused one fails alone, and an engine
that dies fails every request, in flight or later, with one line naming the cause."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError
from types import SimpleNamespace

import pytest

from curate.agent.backends import Completion
from curate.agent.backends.vllm import _Driver
from curate.engine import vllm as engine


class Engine:
    """Each request needs as many steps as its prompt says; a prompt of -1 is refused, of 0 kills the engine."""

    def __init__(self) -> None:
        self.left: dict[str, int] = {}
        self.added: list[tuple[str, int]] = []  # (request, step it was added before)
        self.aborted: list[str] = []
        self.steps = 0
        self.go = threading.Semaphore(0)  # the test lets the engine step

    def add_request(self, request: str, prompt: int, params: object, lora_request: object = None) -> None:
        if prompt < 0:
            raise ValueError("the prompt is longer than the model's context")
        self.left[request] = prompt
        self.added.append((request, self.steps))

    def has_unfinished_requests(self) -> bool:
        return bool(self.left)

    def abort_request(self, requests: list[str]) -> None:
        self.aborted += requests
        for r in requests:
            del self.left[r]

    def step(self) -> list[SimpleNamespace]:
        self.go.acquire()
        self.steps += 1
        if 0 in self.left.values():
            raise RuntimeError("EngineCore encountered an issue. See stack trace (above) for the root cause.")
        out = []
        for r in list(self.left):
            self.left[r] -= 1
            finished = self.left[r] == 0
            if finished:
                del self.left[r]
            text = SimpleNamespace(text=f"req {r}", token_ids=[1] * self.steps, finish_reason="length")
            out.append(SimpleNamespace(request_id=r, finished=finished, outputs=[text]))
        return out


def test_requests_enter_between_steps_and_resolve_as_each_finishes() -> None:
    fake = Engine()
    driver = _Driver(fake)
    slow, quick = driver.submit(3, None, None), driver.submit(1, None, None)
    fake.go.release()
    assert quick.result(5) == Completion("req 1", 1, "length") and not slow.done()
    later = driver.submit(1, None, None)  # enters while `slow` is still generating
    fake.go.release(2)
    assert later.result(5).text == "req 2" and slow.result(5) == Completion("req 0", 3, "length")
    # Added at the first step boundary after it came (the driver may be waiting on a step already).
    assert fake.added[:2] == [("0", 0), ("1", 0)] and fake.added[2][0] == "2" and fake.added[2][1] in (1, 2)
    driver.stop()


def test_a_cancelled_request_is_aborted_and_a_refused_one_fails_alone() -> None:
    fake = Engine()
    driver = _Driver(fake)
    kept, dropped = driver.submit(2, None, None), driver.submit(5, None, None)
    refused = driver.submit(-1, None, None)
    with pytest.raises(RuntimeError, match=r"^vLLM refused a request: ValueError: the prompt is longer"):
        refused.result(5)
    assert dropped.cancel()
    fake.go.release(3)
    assert kept.result(5).text == "req 0" and fake.aborted == ["1"]
    with pytest.raises(CancelledError):
        dropped.result(5)
    driver.stop()


def test_an_engine_that_dies_fails_every_request_in_one_line_naming_the_cause() -> None:
    engine._FAILURES.write_text("RuntimeError: CPU Generator does not use offset\nRuntimeError: Worker failed\n")
    fake = Engine()
    driver = _Driver(fake)
    running, killing = driver.submit(4, None, None), driver.submit(0, None, None)
    fake.go.release()
    line = (
        "vLLM's engine died: RuntimeError: CPU Generator does not use offset; "
        "the runs finished before it are kept: run the same command again to resume"
    )
    for future in (running, killing):
        with pytest.raises(RuntimeError) as died:
            future.result(5)
        assert str(died.value) == line
    with pytest.raises(RuntimeError, match="^vLLM's engine died: RuntimeError: CPU Generator"):
        driver.submit(1, None, None).result(5)  # nothing answers any more: it fails at once
    assert not engine._FAILURES.exists()
    driver.thread.join(5)
    assert not driver.thread.is_alive()
