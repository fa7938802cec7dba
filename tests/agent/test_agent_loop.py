"""The CodeAct loop with a scripted model and the real sandbox: transcripts in the release's message
layout, the error messages the ingest flags read, batching and slots, seeds and prefixes; with a
streaming model, runs that advance on their own and samples that do not depend on the order in which
completions come back."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import closing

import pytest
from agent_script import ScriptedModel, code_step, task_question

from curate.agent.backends import Completion, GenRequest
from curate.agent.loop import MAX_STEPS_ERROR, AgentConfig, Task, derive_seed, run_agents
from curate.agent.prompts import load_prompts
from curate.agent.sandbox import RETRY, PythonSandbox
from curate.ingest import formats

PROMPTS = load_prompts(["web_search"], ["math", "sympy"])


@pytest.fixture(scope="module")
def sandbox():
    with PythonSandbox(workers=2) as sb:
        yield sb


def _run(model, sandbox, tasks, slots=8, **config):
    runs = list(run_agents(tasks, model, sandbox, AgentConfig(PROMPTS, **config), slots=slots))
    return {run.task.key: run for run in runs}


def _flags(run) -> dict:
    record = {
        "question": run.task.question,
        "score": 1,
        "log_data": {"messages": [{"role": r, "content": t} for r, t in run.messages]},
    }
    row = formats.parse(record, formats.SMOLAGENTS, {}).row
    return {k: row[k] for k in ("parse_error", "max_steps", "exec_error", "clean", "tool_calls", "assistant_turns")}


def test_a_run_is_the_release_transcript(sandbox) -> None:
    model = ScriptedModel({"Q1": [code_step("x = 6 * 7\nprint(x)"), code_step("final_answer(x)", "Done.")]})
    run = _run(model, sandbox, [Task("a", "Q1", seed=3)])["a"]
    assert run.messages == [
        ("system", PROMPTS.system),
        ("user", PROMPTS.task_message("Q1")),
        ("assistant", code_step("x = 6 * 7\nprint(x)")),
        (
            "tool-call",
            "Calling tools:\n[{'id': 'call_1', 'type': 'function', 'function': "
            "{'name': 'python_interpreter', 'arguments': 'x = 6 * 7\\nprint(x)'}}]",
        ),
        ("tool-response", "Call id: call_1\nObservation:\nExecution logs:\n42\nLast output from code snippet:\nNone"),
        ("assistant", code_step("final_answer(x)", "Done.")),
        (
            "tool-call",
            "Calling tools:\n[{'id': 'call_2', 'type': 'function', 'function': "
            "{'name': 'python_interpreter', 'arguments': 'final_answer(x)'}}]",
        ),
        ("tool-response", "Call id: call_2\nObservation:\nExecution logs:\nLast output from code snippet:\n42"),
    ]
    assert (run.final_answer, run.steps, run.stop_reason) == ("42", 2, "final_answer")
    assert run.tokens == sum(
        len(code_step(c, t).split())
        for c, t in [("x = 6 * 7\nprint(x)", "I will compute it."), ("final_answer(x)", "Done.")]
    )
    assert _flags(run) == {
        "parse_error": False,
        "max_steps": False,
        "exec_error": False,
        "clean": True,
        "tool_calls": 2,
        "assistant_turns": 2,
    }
    # The model saw the chat view: tool calls dropped, observations as user turns.
    second = model.batches[1][0]
    assert [m["role"] for m in second.messages] == ["system", "user", "assistant", "user"]
    assert second.messages[-1]["content"].startswith("Call id: call_1\nObservation:\nExecution logs:\n42")
    assert second.stop == ("<end_code>", "Observation:", "Calling tools:")
    assert [b[0].seed for b in model.batches] == [derive_seed(3, 0), derive_seed(3, 1)]


def test_parse_error_execution_error_and_step_limit_give_ingest_flags(sandbox) -> None:
    model = ScriptedModel(
        {
            "P": ["I think the answer is 4.", code_step("final_answer(4)")],
            "E": [code_step("print('before')\n1 / 0"), code_step("final_answer('ok')")],
            "M": [code_step("print(1)")],
        },
        after_limit="5, I suppose",
    )
    runs = _run(model, sandbox, [Task("p", "P", 1), Task("e", "E", 2), Task("m", "M", 3)], max_steps=2)
    p, e, m = runs["p"], runs["e"], runs["m"]
    assert p.messages[3][0] == "tool-response" and p.messages[3][1].startswith("Error:\nError in code parsing:\n")
    assert p.messages[3][1].endswith(RETRY) and p.final_answer == "4"
    assert _flags(p) == {
        "parse_error": True,
        "max_steps": False,
        "exec_error": False,
        "clean": False,
        "tool_calls": 1,
        "assistant_turns": 2,
    }
    assert e.messages[4] == ("tool-response", "Call id: call_1\nObservation:\nExecution logs:\nbefore\n")
    assert e.messages[5][1].startswith("Call id: call_1\nError:\nCode execution failed at line '1 / 0'")
    assert _flags(e) == {
        "parse_error": False,
        "max_steps": False,
        "exec_error": True,
        "clean": True,
        "tool_calls": 2,
        "assistant_turns": 2,
    }
    assert m.messages[-1] == ("tool-response", MAX_STEPS_ERROR)
    assert (m.steps, m.stop_reason, m.final_answer) == (2, "max_steps", "5, I suppose")
    assert _flags(m)["max_steps"] and not _flags(m)["clean"]
    # After the limit, one more generation without tools: our answer prompt around the run so far.
    ask = next(r for batch in model.batches for r in batch if not r.stop)
    assert ask.messages[0] == {"role": "system", "content": PROMPTS.final_answer_system}
    assert ask.messages[1]["content"] == PROMPTS.task_message("M")
    assert ask.messages[-1]["content"].endswith(PROMPTS.final_answer_message("M"))
    assert MAX_STEPS_ERROR not in ask.messages[-1]["content"] and ask.seed == derive_seed(3, "answer")


def test_without_the_answer_call_a_limited_run_ends_at_the_limit(sandbox) -> None:
    model = ScriptedModel({"M": [code_step("print(1)")]})
    run = _run(model, sandbox, [Task("m", "M", 3)], max_steps=1, answer_at_max_steps=False)["m"]
    assert (run.steps, run.stop_reason, run.final_answer) == (1, "max_steps", None)
    assert len(model.batches) == 1


def test_one_generation_per_round_and_slots_refill(sandbox) -> None:
    quick = [code_step("final_answer(1)")]
    slow = [code_step("y = 2"), code_step("final_answer(y)")]
    model = ScriptedModel({"A": quick, "B": slow, "C": quick, "D": slow})
    order = []
    tasks = [Task(q, q, i) for i, q in enumerate("ABCD")]
    for run in run_agents(tasks, model, sandbox, AgentConfig(PROMPTS), slots=2):
        order.append(run.task.key)
    # Round 1: A, B. A ends, C takes its slot; round 2: B, C; round 3: D; round 4: D.
    assert [[task_question(r) for r in batch] for batch in model.batches] == [["A", "B"], ["B", "C"], ["D"], ["D"]]
    assert order == ["A", "B", "C", "D"]


def test_state_is_per_run_and_prefix_starts_the_first_thought(sandbox) -> None:
    model = ScriptedModel(
        {
            "S": [code_step("secret = 7\nprint(secret)"), code_step("final_answer(secret)")],
            "T": [
                "Thought: I recall it.\n" + code_step("print(secret)").removeprefix("Thought: I will compute it.\n"),
                code_step("final_answer('none')"),
            ],
        }
    )
    runs = _run(model, sandbox, [Task("s", "S", 1), Task("t", "T", 2, prefix="Thought: I recall it.\n")])
    assert runs["s"].final_answer == "7"
    assert runs["t"].messages[4][1].startswith("Call id: call_1\nError:\nCode execution failed")
    assert "is not defined" in runs["t"].messages[4][1]
    assert runs["t"].messages[2][1].startswith("Thought: I recall it.\nCode:")
    first = next(r for r in model.batches[0] if task_question(r) == "T")
    assert first.prefix == "Thought: I recall it.\n"
    assert all(r.prefix == "" for batch in model.batches[1:] for r in batch)


def test_mint_profile_ends_at_a_solution(sandbox) -> None:
    model = ScriptedModel({"Q": ["<execute>print(3 * 3)</execute>", "The answer is <solution> 9 </solution>"]})
    run = _run(model, sandbox, [Task("q", "Q", 1)], profile="mint")["q"]
    assert run.messages[4] == (
        "tool-response",
        "Call id: call_1\nObservation:\nExecution logs:\n9\nLast output from code snippet:\nNone",
    )
    assert (run.final_answer, run.stop_reason, run.steps) == ("9", "answer", 2)
    assert model.batches[0][0].stop == ("</execute>", "</solution>")


def test_an_error_where_runs_are_taken_is_the_error_raised(sandbox) -> None:
    # The caller fails on the first finished run (a store write, say): that error, not the loop's clean-up, surfaces.
    model = ScriptedModel({q: [code_step("final_answer(1)")] for q in ("Q1", "Q2")})
    tasks = [Task("a", "Q1", seed=1), Task("b", "Q2", seed=2)]
    runs = run_agents(tasks, model, sandbox, AgentConfig(PROMPTS))
    with pytest.raises(OSError, match="disk full"), closing(runs):
        for _run in runs:
            raise OSError("disk full")
    assert sandbox.run([(sandbox.open(), "print(1)")])[0].error is None  # the sandbox still serves


def seeded_text(request: GenRequest) -> str:
    """What a model double writes for a request: decided by its seed alone (and the run's step, which
    the seed encodes too), code that builds on the run's own variables, a parse error now and then."""
    if not request.stop:
        return f"my answer is {request.seed % 97}"
    step = sum(m["role"] == "assistant" for m in request.messages)
    pick = request.seed % 5
    if step == 0:
        return code_step(f"x = {request.seed % 1000}\nprint(x)")
    if pick == 0:
        return "I am not sure what to write."
    if pick == 1 or step >= 3:
        return code_step("final_answer(x + 1)", "Done.")
    return code_step(f"x = x * 2 + {pick}\nprint(x)")


class SeededBatches:
    """A batch-only double: `seeded_text` for every request of a call."""

    name, model_id = "seeded", "seeded-teacher"

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        return [Completion(text := seeded_text(r), len(text.split()), "stop") for r in requests]

    def close(self) -> None:
        pass


class SeededStream(SeededBatches):
    """A streaming double: `seeded_text` too, but its completions come back from another thread, held a
    moment and handed out in an order of its own (shuffled by `order`, or held back for `slow` questions
    until every other request made so far has come back)."""

    def __init__(self, order: random.Random, slow: str | None = None) -> None:
        self.order, self.slow = order, slow
        self.pending: list[tuple[GenRequest, Future[Completion]]] = []
        self.lock = threading.Lock()
        self.served: list[str] = []  # the question of each completion, in the order handed out
        threading.Thread(target=self._serve, daemon=True).start()

    def submit(self, request: GenRequest) -> Future[Completion]:
        future: Future[Completion] = Future()
        with self.lock:
            self.pending.append((request, future))
        return future

    def _serve(self) -> None:
        while True:
            time.sleep(0.005)
            with self.lock:
                now = [p for p in self.pending if task_question(p[0]) != self.slow]
                if not now:  # nothing else left: the slow ones go
                    now = list(self.pending)
                self.pending = [p for p in self.pending if p not in now]
            self.order.shuffle(now)
            for request, future in now:
                time.sleep(self.order.random() / 500)
                self.served.append(task_question(request))
                future.set_result(self.generate([request])[0])


TASKS = [Task(f"t{i}", f"Q{i}", seed=derive_seed(11, i)) for i in range(10)]


def _outcomes(runs: dict) -> dict:
    return {k: (r.messages, r.final_answer, r.stop_reason, r.steps, r.tokens) for k, r in runs.items()}


@pytest.mark.parametrize("candidates", [1, 3])
def test_the_same_seeds_give_the_same_runs_however_completions_interleave(sandbox, candidates) -> None:
    rounds = _outcomes(_run(SeededBatches(), sandbox, TASKS, slots=10, max_steps=3, candidates=candidates))
    # Both endings are there, and parse errors (which a vote of candidates passes over).
    assert {r[2] for r in rounds.values()} == {"final_answer", "max_steps"}
    assert candidates > 1 or any("Error in code parsing" in text for r in rounds.values() for _, text in r[0])
    for shuffle, slots in ((1, 10), (2, 3), (3, 1)):
        model = SeededStream(random.Random(shuffle))
        streamed = _run(model, sandbox, TASKS, slots=slots, max_steps=3, candidates=candidates)
        assert _outcomes(streamed) == rounds
        assert slots == 1 or model.served != sorted(model.served)  # runs' completions did interleave


def test_a_run_goes_on_while_another_waits_for_its_completion(sandbox) -> None:
    # Q0's completions are held until nothing else is waiting: Q1 goes through every step meanwhile.
    model = SeededStream(random.Random(0), slow="Q0")
    finished = [run.task.key for run in run_agents(TASKS[:2], model, sandbox, AgentConfig(PROMPTS, max_steps=3))]
    assert finished == ["t1", "t0"]
    assert model.served[0] == "Q1" and model.served.count("Q1") > 1
