"""`curate generate --backend openai` against a small real HTTP server (stdlib) speaking the chat
completions API, with the real sandbox and store: a server that answers without a completion or
does not answer in time, and completions no parser can take, each said in one line with the store
left resumable."""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from contextlib import redirect_stderr, redirect_stdout
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from openai_server import Api

from curate.cli import main
from curate.store import Store

QUESTIONS = [{"id": f"q{i}", "question": f"What is {i} plus 1?", "answer": str(i + 1)} for i in range(3)]
PROSE = "the answer depends on which of these words matters " * 20_000  # 1 MB on one line


def solves(path: str, body: dict) -> dict:
    """A chat completion that answers the run's question with one code step, stopped at <end_code>."""
    question = body["messages"][1]["content"].split("New task:\n", 1)[-1].split("\n", 1)[0]
    n = int(question.split()[2])
    text = f"Thought: I add.\nCode:\n```py\nfinal_answer({n} + 1)\n```"
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "usage": {"prompt_tokens": 1, "completion_tokens": 9, "total_tokens": 10},
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "stop_reason": "<end_code>",
            }
        ],
    }


class Server(ThreadingHTTPServer):
    """The test server, quiet about clients that hang up: a failed batch leaves its other requests."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def api():
    server = Server(("127.0.0.1", 0), Api)
    server.lock, server.calls, server.in_flight, server.peak = threading.Lock(), [], 0, 0
    server.failures, server.delay, server.answer = 0, lambda n: 0.0, solves
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def questions(tmp_path: Path) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return path


def generate(api, questions: Path, db: Path, *extra: str) -> tuple[int, str, str]:
    """Run `curate generate` against the server: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    argv = [
        "generate",
        "--db",
        str(db),
        "--questions",
        str(questions),
        "--dataset",
        "d",
        "--model",
        "served",
        "--k",
        "2",
        "--tools",
        "python",
        "--max-steps",
        "1",
        "--backend",
        "openai",
        "--endpoint",
        api.url,
        "--slots",
        "2",
        "--write-every",
        "1",
        "--quiet",
        *extra,
    ]
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def stored(db: Path) -> list[tuple]:
    with Store(db, read_only=True) as store:
        return store.sql("SELECT question_id, sample_idx, correct, parse_error FROM trajectories ORDER BY 1, 2").rows()


NO_CHOICES = {"choices": [], "object": "x"}  # a reply without a completion


def fails_without_choices(api, questions: Path, db: Path) -> None:
    """`curate generate` against a server that comes to answer NO_CHOICES: one line, exit 2."""
    code, out, err = generate(api, questions, db)
    assert (code, out) == (2, "")
    assert err == (
        f"curate generate: error: {api.url}: the server answered without a completion (no choices): "
        '{"choices":[],"object":"x"}\n'
    )


def test_a_run_whose_code_still_runs_when_the_server_fails_is_stored(api, questions, tmp_path) -> None:
    # The second completion's code sleeps: the third request (the next question's, made when the first
    # run ends) fails while it runs. The job still ends in one line, after that step, with its run stored.
    def answer(path: str, body: dict) -> dict:
        if len(api.calls) > 2:
            return NO_CHOICES
        reply = solves(path, body)
        if len(api.calls) == 2:
            message = reply["choices"][0]["message"]
            message["content"] = message["content"].replace(
                "final_answer(", "import time\ntime.sleep(2)\nfinal_answer("
            )
        return reply

    db = tmp_path / "gen.duckdb"
    api.answer = answer
    fails_without_choices(api, questions, db)
    assert stored(db) == [("q0", 0, True, False), ("q0", 1, True, False)]


def test_a_reply_without_choices_ends_the_job_in_one_line_and_a_rerun_resumes(api, questions, tmp_path) -> None:
    db = tmp_path / "gen.duckdb"
    api.answer = lambda path, body: solves(path, body) if len(api.calls) <= 2 else NO_CHOICES
    fails_without_choices(api, questions, db)
    assert stored(db) == [("q0", 0, True, False), ("q0", 1, True, False)]
    api.answer = solves
    code, out, err = generate(api, questions, db)
    assert (code, err) == (0, "")
    assert out.splitlines()[0].startswith(
        "d: 3 questions x 2: 4 runs generated, 2 already stored; the run holds 6 trajectories, 6 correct"
    )
    assert len(stored(db)) == 6


def test_a_slow_endpoint_is_retried_past_request_timeout_and_said(api, questions, tmp_path) -> None:
    api.delay = lambda n: 3.0 if n == 1 else 0.0
    start = time.perf_counter()
    code, out, err = generate(
        api, questions, tmp_path / "gen.duckdb", "--request-timeout", "0.5", "--limit", "1", "--slots", "1"
    )
    assert code == 0 and time.perf_counter() - start < 30
    assert err == f"note: {api.url}: no answer within 0.5 s; retrying the request (retry 1 of 4)\n"
    assert len(stored(tmp_path / "gen.duckdb")) == 2


def test_a_completion_of_a_megabyte_of_prose_is_a_stored_parse_error(api, questions, tmp_path) -> None:
    def prose(path: str, body: dict) -> dict:
        reply = solves(path, body)
        reply["choices"][0]["message"]["content"] = PROSE
        reply["choices"][0]["finish_reason"] = "length"
        return reply

    api.answer = prose
    code, out, err = generate(api, questions, tmp_path / "gen.duckdb", "--limit", "1")
    assert (code, err) == (0, "")
    assert stored(tmp_path / "gen.duckdb") == [("q0", 0, False, True), ("q0", 1, False, True)]
