"""Self-consistent action generation in the CodeAct loop, with a scripted model and the real sandbox:
each candidate runs in its own fork of the run's state, failing candidates are dropped, the most
common outcome wins, its state becomes the run's, and with no passing candidate the first is kept."""

from __future__ import annotations

import pytest
from agent_script import ScriptedModel, code_step

from curate.agent.loop import AgentConfig, Task, derive_seed, run_agents
from curate.agent.prompts import load_prompts
from curate.agent.sandbox import PythonSandbox

PROMPTS = load_prompts([], ["math"])
SEED = 11


@pytest.fixture(scope="module")
def sandbox():
    with PythonSandbox(workers=2) as sb:
        yield sb


def _by_candidate(steps: list[list[str]]):
    """A script whose step n answers candidate j (told apart by its seed) with steps[n][j]."""

    def script(request, n):
        if len(steps[n]) == 1:
            return steps[n][0]
        j = next(j for j in range(len(steps[n])) if request.seed == derive_seed(SEED, n, j))
        return steps[n][j]

    return script


def _run(sandbox, steps: list[list[str]], candidates: int = 3, **config):
    model = ScriptedModel({"Q": _by_candidate(steps)})
    cfg = AgentConfig(PROMPTS, candidates=candidates, **config)
    [run] = run_agents([Task("q", "Q", SEED)], model, sandbox, cfg)
    return run, model


def _assistant(run) -> list[str]:
    return [text for role, text in run.messages if role == "assistant"]


def _observations(run) -> list[str]:
    return [text for role, text in run.messages if role == "tool-response"]


def test_candidates_run_in_isolated_states_and_the_majority_state_is_kept(sandbox) -> None:
    setup = code_step("items = []\nprint('ready')")
    mutate = code_step("items.append(1)\nflag = 'set'\nprint(len(items))", "I append.")
    look = code_step("print(len(items))", "I look.")
    peek = code_step("try:\n    print(flag)\nexcept Exception:\n    print(len(items))", "I peek.")
    answer = code_step("final_answer(len(items))", "Done.")
    run, model = _run(sandbox, [[setup] * 3, [mutate, look, peek], [answer] * 3])
    # Candidate 0 appended to the list and set a variable: the others saw neither (each printed 0),
    # so 0 is the majority; the kept state is candidate 1's, where the list is still empty.
    assert _assistant(run) == [setup, look, answer]
    assert (
        _observations(run)[1]
        == "Call id: call_2\nObservation:\nExecution logs:\n0\nLast output from code snippet:\nNone"
    )
    assert (run.final_answer, run.stop_reason, run.steps) == ("0", "final_answer", 3)
    # One generation call per step holds every candidate, sampled as the release samples them.
    assert [len(b) for b in model.batches] == [3, 3, 3]
    assert {(r.temperature, r.top_p) for b in model.batches for r in b} == {(0.4, 0.8)}
    assert len({r.seed for b in model.batches for r in b}) == 9
    assert sandbox._runs == {}  # every fork was released


def test_failing_candidates_are_dropped_before_the_vote(sandbox) -> None:
    steps = [
        [
            "I will not write code.",
            code_step("1 / 0"),
            code_step("final_answer(7)"),
            code_step("print('x')\nfinal_answer(7)"),
            code_step("final_answer(8)"),
        ]
    ]
    run, _ = _run(sandbox, steps, candidates=5)
    # Two answers of 7 (the printed line does not matter for a final answer) beat one 8; the parse
    # failure and the execution error do not vote.
    assert _assistant(run) == [code_step("final_answer(7)")]
    assert (run.final_answer, run.steps) == ("7", 1)


def test_all_outcomes_different_keeps_the_first_passing_candidate(sandbox) -> None:
    steps = [[code_step("1 / 0"), code_step("final_answer(1)"), code_step("final_answer(2)")]]
    run, _ = _run(sandbox, steps)
    assert (_assistant(run), run.final_answer) == ([code_step("final_answer(1)")], "1")


def test_with_no_passing_candidate_the_first_is_kept_with_its_error(sandbox) -> None:
    broken = code_step("value = 5\nprint('half')\n1 / 0", "First try.")
    steps = [[broken, "No code here.", code_step("undefined_name + 1")], [code_step("final_answer(value)")] * 3]
    run, _ = _run(sandbox, steps)
    # The first candidate's failed execution is the step (its error observation, its state: value
    # was set before the error, as in a run without candidates), and the run goes on.
    assert _assistant(run)[0] == broken
    assert _observations(run)[0] == "Call id: call_1\nObservation:\nExecution logs:\nhalf\n"
    assert _observations(run)[1].startswith("Call id: call_1\nError:\nCode execution failed at line '1 / 0'")
    assert (run.final_answer, run.steps) == ("5", 2)


def test_with_no_passing_candidate_a_first_candidate_without_code_is_a_parse_error(sandbox) -> None:
    steps = [["No code here.", code_step("1 / 0")], [code_step("final_answer(3)")] * 2]
    run, _ = _run(sandbox, steps, candidates=2)
    assert _assistant(run)[0] == "No code here."
    assert _observations(run)[0].startswith("Error:\nError in code parsing:\n")
    assert run.final_answer == "3"


def test_one_candidate_is_the_plain_loop(sandbox) -> None:
    steps = [[code_step("final_answer(4)")]]
    run, model = _run(sandbox, steps, candidates=1, temperature=0.0)
    assert run.final_answer == "4"
    [[request]] = model.batches
    assert (request.temperature, request.top_p, request.seed) == (0.0, 1.0, derive_seed(SEED, 0))
