"""curate replay: stored code actions re-executed in the sandbox, observations compared."""

from __future__ import annotations

import json

import duckdb
import pytest
from factory import add_trajectories
from smolagents.local_python_executor import LocalPythonExecutor

from curate import Store
from curate.agent.replay import Step, code_steps, mint_mismatch, mint_output, replay_store
from curate.agent.sandbox import RETRY, Limits, PythonSandbox, StepResult
from curate.cli import main
from curate.ingest import ingest

CODES = ["x = 6\nprint(x * 7)", "import math\nmath.sqrt(x + 10)", "y = 1 / 0", "print(x)\nfinal_answer(x * 7)"]


def _release_log(codes: list[str]) -> list[dict]:
    """A smolagents log of these code steps, observations made by smolagents' own executor in this
    process (the release's message layout), independent of the sandbox."""
    executor = LocalPythonExecutor([], timeout_seconds=None)
    executor.send_tools({"final_answer": lambda answer: answer})
    messages = [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": "New task:\nq"}]
    for n, code in enumerate(codes, 1):
        messages.append({"role": "assistant", "content": f"Thought: step {n}\nCode:\n```py\n{code}\n```<end_code>"})
        messages.append({"role": "tool-call", "content": f"Calling tools:\n[{{'id': 'call_{n}'}}]"})
        try:
            out = executor(code)
            messages.append(
                {
                    "role": "tool-response",
                    "content": f"Call id: call_{n}\nObservation:\nExecution logs:\n"
                    f"{out.logs}Last output from code snippet:\n{out.output}",
                }
            )
        except Exception as error:  # noqa: BLE001
            messages.append({"role": "tool-response", "content": f"Call id: call_{n}\nError:\n{error}\n{RETRY}"})
    return messages


@pytest.fixture(scope="module")
def sandbox():
    with PythonSandbox(Limits(seconds=5), workers=2) as sb:
        yield sb


def _record(messages, qid="q1"):
    return {
        "question": "q",
        "question_id": qid,
        "true_answer": "42",
        "generated_answer": "42",
        "score": 1,
        "model_id": "t",
        "log_data": {"messages": messages},
    }


def test_smolagents_logs_replay_and_a_tampered_observation_is_found(tmp_path, sandbox):
    honest = _release_log(CODES)
    tampered = json.loads(json.dumps(honest))
    assert tampered[7]["content"].endswith("4.0")  # step 1 showed sqrt(16)
    tampered[7]["content"] = tampered[7]["content"].replace("4.0", "5.0")
    tampered.append({"role": "tool-response", "content": "Error:\nReached max steps."})
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(_record(honest)) + "\n" + json.dumps(_record(tampered, "q2")) + "\n")
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, [path], "logs")
        summary, skipped = replay_store(store, sandbox, dataset="logs")
        rows = store.sql(
            "SELECT t.question_id, r.* EXCLUDE (replayed_at, settings) FROM replays r "
            "JOIN trajectories t USING (trajectory_id) ORDER BY 1"
        ).rows()
    assert [r[0] for r in rows] == ["q1", "q2"]
    assert rows[0][2:] == (4, 4, None, None)
    assert rows[1][2:5] == (4, 3, 1)
    assert rows[1][5] == (
        "step 1: stored 'Observation: Execution logs: Last output from code snippet: 5.0', "
        "replay 'Observation: Execution logs: Last output from code snippet: 4.0'"
    )
    assert summary.rows() == [("logs", 2, 8, 7, 7 / 8, 1, 0)] and skipped == 0


def test_a_rerun_skips_what_it_replayed_under_the_same_settings(tmp_path, capsys):
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(_record(_release_log(CODES), q)) + "\n" for q in ("q1", "q2", "q3")))
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        ingest(store, [path], "logs")
        [(first,)] = store.sql("SELECT min(trajectory_id) FROM trajectories").rows()
    argv = ["replay", "--db", str(db), "--seconds", "5", "--workers", "2"]
    assert main([*argv, "--trajectory", first]) == 0
    with Store(db) as store:
        store.sql("UPDATE replays SET reason = 'kept'")  # marks the row a rerun must not replace
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "python tool: bubblewrap jail, no network, no secrets, 256 processes, 1024 MiB each; "
        "0 secret values redacted from observations",
        "skipped 1 trajectories already replayed under these settings (--again replays them)",
        "logs: 3 trajectories, 12 code steps, 12 reproduced (100.0%); 3 trajectories reproduced in full, "
        "0 without a code step",
    ]
    with Store(db, read_only=True) as store:
        assert store.sql("SELECT count(*) FILTER (reason = 'kept'), count(DISTINCT settings) FROM replays").rows() == [
            (1, 1)
        ]
    assert main([*argv, "--again"]) == 0 and "skipped" not in capsys.readouterr().out
    with Store(db, read_only=True) as store:
        assert store.sql("SELECT count(*) FILTER (reason = 'kept') FROM replays").rows() == [(0,)]
    assert main([*argv, "--seconds", "4"]) == 0 and "skipped" not in capsys.readouterr().out


def test_code_steps_pair_actions_with_their_observations():
    messages = [
        ("system", "s"),
        ("user", "task"),
        ("assistant", "Thought: a\nCode:\n```py\nx = 1\n```<end_code>"),
        ("tool-call", "Calling tools: ..."),
        ("tool-response", "Call id: call_1\nObservation:\nExecution logs:\nLast output from code snippet:\n1"),
        ("assistant", "Thought: no code here"),
        ("tool-response", "Error:\nError in code parsing: ..."),
        ("assistant", "Thought: c\nCode:\n```py\nfinal_answer(x)\n```<end_code>"),
    ]
    assert code_steps(messages, "smolagents") == [
        Step("x = 1", "Observation:\nExecution logs:\nLast output from code snippet:\n1")
    ]
    mint = [
        ("user", "few-shot ... <execute> a = 1 </execute>\nTask:\nq"),
        ("assistant", "Assistant:\n<execute> a = 2 </execute> and <execute>print(a)</execute>"),
        ("user", "Observation:\n2\nYou have 4 steps left and 2 chances to propose solution left.\n"),
        ("assistant", "Assistant:\n<execute>a</execute> The answer is <solution> 2 </solution>"),
        ("user", "Observation:\nYour answer is wrong.\n"),
    ]
    assert code_steps(mint, "mint") == [
        Step("a = 2\nprint(a)", "Observation:\n2\nYou have 4 steps left and 2 chances to propose solution left.\n")
    ]


def test_mint_observations_are_read_as_ipython_showed_them():
    ok = StepResult.success(logs="1\n", value="None", value_repr="None")
    assert mint_output("print(1)", ok) == "1"
    shown = StepResult.success(logs="", value="x", value_repr="'x'")
    assert (
        mint_output("s = 'x'\ns", shown) == "'x'"
        and mint_output("s = 'x'", shown) == "[Executed Successfully with No Output]"
    )
    assert mint_output("s;", shown) == "[Executed Successfully with No Output]"
    long = StepResult.success(logs="a" * 2500, value="None", value_repr="None")
    assert mint_output("print('a' * 2500)", long) == "a" * 2000 + "...\n[Output Truncated]"
    traceback = (
        "Observation:\n---------------------------------------------------------------------------\n"
        "NameError    Traceback (most recent call last)\nCell In[1], line 1\n----> 1 y\n\n"
        "NameError: name 'y' is not defined\nYou have 3 steps left and 2 chances to propose solution left.\n"
    )
    failed = StepResult.failure("Code execution failed at line 'y' due to: InterpreterError: ...")
    assert mint_mismatch(Step("y", traceback), failed) is None
    assert mint_mismatch(Step("y", traceback), ok) == "stored an error, replay ran: '1'"
    assert mint_mismatch(Step("print(1)", "Observation:\n1 \n\nYou have 3 steps left"), ok) is None
    assert mint_mismatch(Step("s = 'x'\ns", "Observation:\nOut[2]: 'x'\nYou have 3 steps left"), shown) is None


@pytest.fixture(scope="module")
def mint_store(tmp_path_factory, shared_data):
    path = tmp_path_factory.mktemp("mint") / "mint.duckdb"
    with Store(path) as store:
        ingest(store, [shared_data / "trajectories/mint/mint_gsm8k.jsonl.gz"], "mint-gsm8k")
    return path


def _ids(store, lines):
    return [store.sql("SELECT trajectory_id FROM trajectories WHERE source_line = $l", l=line).item() for line in lines]


def test_real_mint_runs_replay(mint_store, sandbox):
    with Store(mint_store) as store:
        # line 4: three printed results; line 850: a NameError traceback; line 220: `fractions`
        ids = _ids(store, [4, 850, 220])
        replay_store(store, sandbox, ids=ids)
        got = {r[0]: r[1:] for r in store.sql("SELECT * EXCLUDE (replayed_at, settings) FROM replays").rows()}
    assert got[ids[0]] == (3, 3, None, None)
    assert got[ids[1]] == (1, 1, None, None)
    steps, reproduced, first, reason = got[ids[2]]
    assert (steps, reproduced, first) == (2, 0, 0)
    assert reason.startswith(
        "step 0: replay failed (\"Code execution failed at line 'from fractions import "
        "Fraction' due to: InterpreterError: Import from fractions is not"
    )
    assert reason.endswith("stored '-350/9'")


def test_cli_replays_a_data_set_and_widens_imports(mint_store, capsys):
    with Store(mint_store, read_only=True) as store:
        [line_220] = _ids(store, [220])
    assert (
        main(
            [
                "replay",
                "--db",
                str(mint_store),
                "--trajectory",
                line_220,
                "--seconds",
                "5",
                "--imports",
                "numpy.*,sympy.*,fractions",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[-1] == (
        "mint-gsm8k: 1 trajectories, 2 code steps, 2 reproduced (100.0%); "
        "1 trajectories reproduced in full, 0 without a code step"
    )
    assert main(["replay", "--db", str(mint_store), "--dataset", "nope"]) == 2
    assert "curate replay: error: no trajectories to replay in data set 'nope'" in capsys.readouterr().err


def test_summary_sql_golden_rows(tmp_path):
    with Store(tmp_path / "g.duckdb") as store:
        con: duckdb.DuckDBPyConnection = store.con
        add_trajectories(
            store,
            [
                {"trajectory_id": t, "dataset": d, "question_id": t}
                for t, d in (("a", "d1"), ("b", "d1"), ("c", "d2"), ("d", "d2"))
            ],
        )
        con.execute(
            "INSERT INTO replays (trajectory_id, steps, reproduced, first_mismatch, reason, replayed_at) "
            "VALUES ('a', 3, 3, NULL, NULL, now()), ('b', 2, 1, 0, 'step 0: x', now()), "
            "('c', 0, 0, NULL, NULL, now())"
        )
        assert store.run("replay/summary", dataset=None, ids=None).rows() == [
            ("d1", 2, 5, 4, 0.8, 1, 0),
            ("d2", 1, 0, 0, None, 0, 1),
        ]
        assert store.run("replay/summary", dataset="d1", ids=["b"]).rows() == [("d1", 1, 2, 1, 0.5, 0, 0)]


def test_a_turn_of_long_prose_is_no_code_step(tmp_path, capsys):
    messages = _release_log(CODES[:1])
    prose = "Thought: " + "the answer depends on which of these words matters " * 300  # 15 KB on one line
    messages[2:2] = [
        {"role": "assistant", "content": prose},
        {"role": "tool-response", "content": "Call id: call_0\nError:\nno code found"},
    ]
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(_record(messages)) + "\n")
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        ingest(store, [path], "logs")
    assert main(["replay", "--db", str(db), "--seconds", "5", "--workers", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "logs: 1 trajectories, 1 code steps, 1 reproduced (100.0%); "
        "1 trajectories reproduced in full, 0 without a code step"
    )
