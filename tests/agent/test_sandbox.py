"""The python tool: smolagents' executor in forked worker processes, per-run state, limits."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from curate.agent.sandbox import RETRY, Limits, PythonSandbox, StepResult

LIMITS = Limits(seconds=3, memory_mb=512, output_chars=10_000)


class Tools:
    """A tool run in the test process: a search that records its queries."""

    def __init__(self):
        self.queries: list[str] = []

    def web_search(self, query: str) -> str:
        if query == "boom":
            raise ValueError("index unavailable")
        self.queries.append(query)
        return f"Retrieved documents:\n{query}"


@pytest.fixture(scope="module")
def tools():
    return Tools()


@pytest.fixture(scope="module")
def sandbox(tools):
    with PythonSandbox(LIMITS, tools={"web_search": tools.web_search}, workers=2) as sb:
        yield sb


def test_state_persists_across_steps_of_one_run_and_nowhere_else(sandbox):
    a, b = sandbox.open(), sandbox.open()
    sandbox.run([(a, "x = 41"), (b, "y = 'b'")])
    ra, rb = sandbox.run([(a, "x += 1\nprint(x)"), (b, "x")])
    assert ra.logs == "42\n" and ra.error is None
    assert rb.error == "Code execution failed at line 'x' due to: InterpreterError: The variable `x` is not defined."
    assert sandbox.run([(b, "y")])[0].value == "b"


def test_observation_texts_are_the_releases(sandbox):
    h = sandbox.open()
    [ok] = sandbox.run([(h, "print('hi', 2)\n3 * 7")])
    assert ok.observation == "Execution logs:\nhi 2\nLast output from code snippet:\n21"
    assert ok.tool_responses("call_2") == ["Call id: call_2\nObservation:\n" + ok.observation]
    [bad] = sandbox.run([(h, "y = 5\nprint('before')\n1 / 0")])
    error = "Code execution failed at line '1 / 0' due to: ZeroDivisionError: division by zero"
    assert bad.error == error and bad.logs == "before\n" and not bad.is_final
    assert bad.observation == f"Execution logs:\nbefore\n\nError:\n{error}\n{RETRY}"
    assert bad.tool_responses("call_3") == [
        "Call id: call_3\nObservation:\nExecution logs:\nbefore\n",
        f"Call id: call_3\nError:\n{error}\n{RETRY}",
    ]
    # the run goes on, with what the failed step did before its error (as smolagents keeps it)
    [after] = sandbox.run([(h, "y * 2")])
    assert after.value == "10"


def test_final_answer_ends_the_run_with_its_value(sandbox):
    h = sandbox.open()
    [r] = sandbox.run([(h, "import sympy\nx = sympy.Rational(1, 3)\nfinal_answer(x * 2)")])
    assert r.is_final and r.final_answer == "2/3" and r.error is None
    assert r.observation == "Execution logs:\nLast output from code snippet:\n2/3"


def test_syntax_error_is_an_observation(sandbox):
    [r] = sandbox.run([(sandbox.open(), "x = (1,")])
    assert r.error.startswith("Code parsing failed on line 1 due to: SyntaxError")


def test_fork_copies_state_and_isolates_it(sandbox):
    a = sandbox.open()
    sandbox.run([(a, "data = [1]\nn = 1")])
    f1, f2 = sandbox.fork(a), sandbox.fork(a)
    sandbox.run([(f1, "data.append(2)\nn = 10"), (f2, "data.append(3)\nm = 'f2'")])
    got = sandbox.run([(a, "(data, n)"), (f1, "(data, n)"), (f2, "(data, n, m)")])
    assert [r.value for r in got] == ["([1], 1)", "([1, 2], 10)", "([1, 3], 1, 'f2')"]
    [r] = sandbox.run([(f1, "m")])
    assert "The variable `m` is not defined" in r.error
    sandbox.release(f1)
    with pytest.raises(ValueError, match="unknown or released run handle"):
        sandbox.run([(f1, "1")])


def test_tools_run_in_the_parent(sandbox, tools):
    h = sandbox.open()
    [r] = sandbox.run([(h, "docs = web_search('Eiffel Tower')\nprint(docs)")])
    assert r.logs == "Retrieved documents:\nEiffel Tower\n" and tools.queries[-1] == "Eiffel Tower"
    [r] = sandbox.run([(h, "web_search('boom')")])
    assert r.error.endswith("due to: ToolError: web_search failed: ValueError: index unavailable")
    [r] = sandbox.run([(h, "docs[:9]")])
    assert r.value == "Retrieved"


def test_batches_reject_repeated_or_unknown_handles(sandbox):
    h = sandbox.open()
    with pytest.raises(ValueError, match="a batch may hold one step per run"):
        sandbox.run([(h, "1"), (h, "2")])
    with pytest.raises(ValueError, match="unknown or released run handle 999"):
        sandbox.run([(999, "1")])


def test_steps_of_a_batch_run_in_parallel(sandbox):
    code = "import time\nstart = time.time()\ntime.sleep(1)\n(start, time.time())"
    a, b = sandbox.open(), sandbox.open()
    (s1, e1), (s2, e2) = (eval(r.value) for r in sandbox.run([(a, code), (b, code)]))
    assert s2 < e1 and s1 < e2  # the two sleeps overlapped


def test_hostile_steps_end_as_errors_and_spare_the_batch(sandbox, tmp_path):
    keep1, keep2 = sandbox.open(), sandbox.open()
    sandbox.run([(keep1, "values = [1, 2, 3]"), (keep2, "import numpy as np\nm = np.eye(3)")])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    outside = tmp_path / "outside"
    hostile = {
        f"import os\nos.system('touch {outside}')": "Import of os is not allowed",
        f"import subprocess\nsubprocess.run(['touch', '{outside}'])": "Import of subprocess is not allowed",
        "print(open('/etc/passwd').read())": "Forbidden function evaluation: 'open'",
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}))": "Import of socket is not allowed",
        # Each pass is slow, so the time limit fires long before smolagents' 1,000,000-iteration cap.
        "while True:\n    sum(range(10**6))": "the step exceeded the time limit of 3 s",
        "import numpy as np\nbig = np.ones(10 * 1024**3, dtype=np.uint8)": "MemoryError",
        "big = [0] * (10 * 1024**3)": "MemoryError",
        "def f(n):\n    return f(n + 1)\nf(0)": "RecursionError: maximum recursion depth exceeded",
        "for i in range(10**6):\n    print('x' * 100)": "printed output exceeded 10000 characters",
        "import ctypes": "Import of ctypes is not allowed",
        # the jail has no such folder: its view holds the interpreter and /sandbox only
        f"import numpy as np\nnp.save('{outside}.npy', np.zeros(3))": "No such file or directory",
        "import numpy as np\nnp.save('inside.npy', np.zeros(3))": "File too large",
        "gone = 1\nsum(range(10**12))": "the step exceeded the time limit of 3 s",
    }
    runs = {code: sandbox.open() for code in hostile}
    steps = [(keep1, "total = sum(values)"), *((runs[c], c) for c in hostile), (keep2, "m.trace()")]
    results = sandbox.run(steps)
    assert results[0].value == "6" and results[-1].value == "3.0"
    for (code, expected), r in zip(hostile.items(), results[1:-1]):
        assert r.error is not None and expected in r.error, (code, r.error)
    # nothing was written outside the sandbox's folder, no connection was made
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    # the other runs keep their state; a killed step's changes are gone, its run goes on
    after = sandbox.run(
        [(keep1, "(values, total)"), (keep2, "m.shape"), (runs["gone = 1\nsum(range(10**12))"], "gone")]
    )
    assert after[0].value == "([1, 2, 3], 6)" and after[1].value == "(3, 3)"
    assert "The variable `gone` is not defined" in after[2].error


def test_a_step_that_dies_keeps_the_state_before_it(sandbox):
    h = sandbox.open()
    sandbox.run([(h, "w = 7")])
    # sympify evaluates Python: the step's process kills itself, as a crash in native code would end it
    crash = "import sympy\nw = 8\nsympy.sympify(\"__import__('os').kill(__import__('os').getpid(), 9)\")"
    [r] = sandbox.run([(h, crash)])
    assert r.error.startswith("Code execution failed: its process ended abnormally")
    assert sandbox.run([(h, "w")])[0].value == "7"


def test_workers_are_isolated_and_reproducible(sandbox):
    assert sandbox.isolation["network"] == "none (network namespace)"
    assert sandbox.isolation["hash_seed"] == "0"
    assert sandbox.isolation["processes"].startswith(f"at most {LIMITS.processes} processes and threads")
    assert sandbox.authorized_imports == [
        "collections",
        "datetime",
        "itertools",
        "math",
        "numpy.*",
        "queue",
        "random",
        "re",
        "stat",
        "statistics",
        "sympy.*",
        "time",
        "unicodedata",
    ]
    # the list smolagents names when it refuses an import is the same one
    [r] = sandbox.run([(sandbox.open(), "import os")])
    assert r.error.endswith(f"Authorized imports are: {sandbox.authorized_imports}")
    code = "print(list(set(['apple', 'pear', 'fig', 'kiwi', 'plum', 'lime', 'date'])))"
    reference = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert sandbox.run([(sandbox.open(), code)])[0].logs == reference


def test_closed_sandbox_refuses_work(tmp_path):
    sb = PythonSandbox(Limits(seconds=2))
    workdir = Path(sb.workdir)
    h = sb.open()
    assert sb.run([(h, "1 + 1")])[0].value == "2"
    sb.close()
    assert not workdir.exists()
    with pytest.raises(RuntimeError, match="the sandbox is closed"):
        sb.open()


def test_step_result_constructors():
    r = StepResult.failure("boom")
    assert r.observation == f"Error:\nboom\n{RETRY}" and r.tool_responses("call_1") == [
        f"Call id: call_1\nError:\nboom\n{RETRY}"
    ]
