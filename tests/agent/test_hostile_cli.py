"""Hostile code through the commands that run it: `curate replay` of a crafted log and `curate
generate` with a scripted teacher, each a real curate process holding secrets in its environment.
Every job finishes, no secret reaches any table, log or export, nothing escapes or survives."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from hostile import SECRETS, attacks, environment_with_secrets, survivors, unpickled

ROUTES = ("sympy", "libc")


def curate(
    args: list[str], env: dict[str, str], script: str = "from curate.cli import main"
) -> subprocess.CompletedProcess:
    """A curate command in its own process; it must end (no survivor may hold its pipes)."""
    code = f"import sys\n{script}\nsys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=600)


def assert_nothing_leaked(db: Path, *files: Path) -> None:
    """No secret value in any text column of any table of the store, nor in the files."""
    con = duckdb.connect(str(db), read_only=True)
    tables = [
        t
        for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()
    ]
    texts = 0
    for table in tables:
        for row in con.execute(f'SELECT * FROM "{table}"').fetchall():
            for cell in row:
                text = json.dumps(cell, default=str)
                texts += 1
                for value in SECRETS.values():
                    assert value not in text, (table, cell)
    con.close()
    assert texts > 0
    for path in files:
        content = path.read_bytes()
        assert not any(value.encode() in content for value in SECRETS.values()), path


def test_replay_of_a_crafted_log_finishes_and_nothing_escapes(tmp_path: Path, listener) -> None:
    env = environment_with_secrets(tmp_path / "home")
    outside = tmp_path / "outside"
    records = []
    for name, steps in attacks(tmp_path / "home", outside, listener.getsockname()[1]).items():
        for route, code in zip(ROUTES, steps):
            messages = [
                {"role": "system", "content": "You are an agent."},
                {"role": "user", "content": f"New task:\n{name} ({route})"},
                {"role": "assistant", "content": f"Thought: now.\nCode:\n```py\n{code}\n```<end_code>"},
                {"role": "tool-call", "content": "Calling tools:\n[{'id': 'call_1'}]"},
                {
                    "role": "tool-response",
                    "content": "Call id: call_1\nObservation:\nExecution logs:\nLast output from code snippet:\nNone",
                },
            ]
            records.append(
                {
                    "question": f"{name} ({route})",
                    "question_id": f"{name}-{route}",
                    "true_answer": "1",
                    "generated_answer": "1",
                    "score": 1,
                    "model_id": "hostile",
                    "log_data": {"messages": messages},
                }
            )
    log = tmp_path / "crafted.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    db = tmp_path / "store.duckdb"
    ingested = curate(["ingest", "--db", str(db), "--dataset", "crafted", str(log)], env)
    assert ingested.returncode == 0, ingested.stderr
    done = curate(["replay", "--db", str(db), "--seconds", "3", "--workers", "2"], env)
    assert done.returncode == 0, done.stderr  # curate was neither killed (-9) nor crashed
    assert done.stdout.splitlines()[-1].startswith(f"crafted: {len(records)} trajectories, {len(records)} code steps")
    assert done.stdout.splitlines()[0] == (
        "python tool: bubblewrap jail, no network, no secrets, 256 processes, "
        "1024 MiB each; 0 secret values redacted from observations"
    )
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT trajectory_id) FROM replays").fetchone() == (18, 18)
    assert_nothing_leaked(db)
    assert not outside.exists() and not unpickled(outside).exists() and survivors() == []
    with pytest.raises(TimeoutError):
        listener.accept()


GENERATE = """
from agent_script import ScriptedModel, code_step
import curate.agent.generate as job
from curate.cli import main
steps = json.loads(sys.argv.pop(1))
model = ScriptedModel({q: [code_step(c), code_step("final_answer(5)")] for q, c in steps.items()})
job.make_backend = lambda *args, **kwargs: model
"""


def test_generate_with_a_hostile_teacher_stores_and_exports_nothing_secret(
    tmp_path: Path, listener, tiny_model_dir: Path
) -> None:
    env = {**environment_with_secrets(tmp_path / "home"), "PYTHONPATH": str(Path(__file__).parents[1])}
    outside = tmp_path / "outside"
    steps, questions = {}, []
    for name, codes in attacks(tmp_path / "home", outside, listener.getsockname()[1]).items():
        for route, code in zip(ROUTES, codes):
            text = f"With {name} ({route}): what is 2 plus 3?"
            steps[text] = code
            questions.append({"id": f"{name}-{route}".replace(" ", "-"), "question": text, "answer": "5"})
    qfile = tmp_path / "questions.jsonl"
    qfile.write_text("".join(json.dumps(q) + "\n" for q in questions))
    db, logs = tmp_path / "gen.duckdb", tmp_path / "logs.jsonl"
    script = "import json\n" + textwrap.dedent(GENERATE)
    done = curate(
        [
            json.dumps(steps),
            "generate",
            "--db",
            str(db),
            "--questions",
            str(qfile),
            "--dataset",
            "gen",
            "--model",
            "scripted",
            "--k",
            "1",
            "--tools",
            "python",
            "--max-steps",
            "2",
            "--slots",
            "6",
            "--log-out",
            str(logs),
            "--quiet",
        ],
        env,
        script,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"gen: {len(questions)} questions x 1: {len(questions)} runs generated")
    assert lines[1].startswith("python tool: bubblewrap jail") and lines[-1].startswith("generation_run=")
    with duckdb.connect(str(db), read_only=True) as con:
        clean = con.execute("SELECT count(*) FILTER (WHERE clean), count(*) FROM trajectories").fetchone()
    assert clean[1] == len(questions) and clean[0] >= 6  # the steps that ran to the end are clean runs
    scored = curate(["score", "--db", str(db), "--student", str(tiny_model_dir), "--no-progress"], env)
    assert scored.returncode == 0, scored.stderr
    export = tmp_path / "export.parquet"
    exported = curate(["export", "--db", str(db), "--policy", "first", "--to", str(export)], env)
    assert exported.returncode == 0, exported.stderr
    assert pq.read_table(export).num_rows == clean[0]  # every clean run went out, its observations with it
    assert_nothing_leaked(db, logs, export)
    assert not outside.exists() and not unpickled(outside).exists() and survivors() == []
    with pytest.raises(TimeoutError):
        listener.accept()
