"""`curate eval` and `curate eval-report` with scripted students (the test double stands in for the model
only; the sandbox, store, graders and tables are real): pass@1 from per-question verdicts known by
construction, several runs sharing a benchmark's data set, resume and extension, a judge regrading
reused trajectories, the trained system prompt, and the files and errors a user sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agent_script import ScriptedModel, code_step

from curate.agent.backends import Completion
from curate.cli import main
from curate.eval.benchmarks import resolve_benchmarks, trained_prompt
from curate.eval.evaluate import EvalConfig, evaluate
from curate.eval.outputs import write_outputs
from curate.store import Store

ARITH = [
    {"id": "m1", "question": "What is 6 times 7?", "answer": "42"},
    {"id": "m2", "question": "What is 2 plus 3?", "answer": "5"},
    {"id": "m3", "question": "What is 10 minus 1?", "answer": "9"},
]
TRIVIA = [
    {"id": "t1", "question": "Who wrote Hamlet?", "answer": ["William Shakespeare", "Shakespeare"]},
    {"id": "t2", "question": "What is the capital of France?", "answer": "Paris"},
]
# Per student, per question: the final answer and whether it is right (the verdicts by construction).
ANSWERS = {
    "a": {
        "m1": ("42", True),
        "m2": ("\\\\boxed{5}", True),
        "m3": ("8", False),
        "t1": ("Shakespeare", True),
        "t2": ("Lyon", False),
    },
    "b": {
        "m1": ("41", False),
        "m2": ("5", True),
        "m3": ("9.0", True),
        "t1": ("Marlowe", False),
        "t2": ("The city of Paris", False),
    },
}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    found = {}
    for name, questions in (("arith", ARITH), ("trivia", TRIVIA)):
        found[name] = tmp_path / f"{name}.jsonl"
        found[name].write_text("".join(json.dumps(q) + "\n" for q in questions))
    return found


def student(which: str) -> ScriptedModel:
    """One step: compute nothing, answer. The first step of m1 prints first (two steps)."""
    texts = {q["question"]: q["id"] for q in ARITH + TRIVIA}
    model = ScriptedModel(
        {text: [code_step(f'final_answer("{ANSWERS[which][qid][0]}")')] for text, qid in texts.items()}
    )
    model.steps["What is 6 times 7?"] = [
        code_step("x = 6 * 7\nprint(x)"),
        code_step(f'final_answer("{ANSWERS[which]["m1"][0]}")'),
    ]
    model.model_id = f"student-{which}"
    return model


def config(files: dict[str, Path], which: str, **changes) -> EvalConfig:
    base = dict(
        model=f"student-{which}",
        benchmarks=f"{files['arith']},{files['trivia']}",
        tools=("python",),
        name=which.upper(),
        write_every=1,
    )
    return EvalConfig(**{**base, **changes})


def stored(db: Path) -> list[tuple]:
    with Store(db, read_only=True) as store:
        return store.sql(
            "SELECT dataset, question_id, sample_idx, teacher_model, generated_answer, correct "
            "FROM trajectories ORDER BY dataset, sample_idx, question_id"
        ).rows()


def test_pass_at_1_is_the_mean_of_verdicts_known_by_construction(tmp_path: Path, files) -> None:
    db = tmp_path / "e.duckdb"
    result = evaluate(db, config(files, "a"), progress=False, backend=student("a"))
    by_name = {b.name: b for b in result.benchmarks}
    assert [b.name for b in result.benchmarks] == ["arith", "trivia"]  # question files: by name
    assert (by_name["arith"].n, by_name["arith"].correct, by_name["arith"].grader) == (3, 2, "math")
    assert (by_name["trivia"].n, by_name["trivia"].correct, by_name["trivia"].grader) == (2, 1, "qa")
    verdicts = {p["question_id"]: p["correct"] for b in result.benchmarks for p in b.predictions}
    assert verdicts == {qid: ok for qid, (_, ok) in ANSWERS["a"].items()}
    for b in result.benchmarks:
        assert b.pass_at_1 == pytest.approx(100 * sum(p["correct"] for p in b.predictions) / len(b.predictions))
    assert result.average == pytest.approx((200 / 3 + 50) / 2)
    # Every question is a trajectory of data set eval:<benchmark>, graded, with its run's provenance.
    assert stored(db) == [
        ("eval:arith", "m1", 0, "student-a", "42", True),
        ("eval:arith", "m2", 0, "student-a", "\\boxed{5}", True),
        ("eval:arith", "m3", 0, "student-a", "8", False),
        ("eval:trivia", "t1", 0, "student-a", "Shakespeare", True),
        ("eval:trivia", "t2", 0, "student-a", "Lyon", False),
    ]
    with Store(db, read_only=True) as store:
        rows = store.sql(
            "SELECT benchmark, dataset, questions, correct, pass_at_1, grader, name, adapter, "
            "system_prompt_source, protocol->>'temperature' FROM eval_runs ORDER BY benchmark"
        ).rows()
        steps = store.sql("SELECT question_id, steps FROM trajectories ORDER BY 1").rows()
    assert rows == [
        ("arith", "eval:arith", 3, 2, pytest.approx(200 / 3), "math", "A", None, "packaged", "0.0"),
        ("trivia", "eval:trivia", 2, 1, 50.0, "qa", "A", None, "packaged", "0.0"),
    ]
    assert dict(steps)["m1"] == 2 and {p["steps"] for p in result.benchmarks[1].predictions} == {1}


def test_out_files_have_the_documented_shape(tmp_path: Path, files) -> None:
    db, out = tmp_path / "e.duckdb", tmp_path / "out"
    result = evaluate(db, config(files, "a"), progress=False, backend=student("a"))
    table = write_outputs(db, result, out)
    doc = json.loads((out / "results.json").read_text())
    assert {k: doc[k] for k in ("eval_run", "model", "adapter", "average")} == {
        "eval_run": result.eval_run,
        "model": "student-a",
        "adapter": None,
        "average": pytest.approx(58.3333),
    }
    assert doc["benchmarks"]["arith"] == {
        "n": 3,
        "correct": 2,
        "pass@1": pytest.approx(66.6667),
        "grader": "math",
        "generation_run": result.benchmarks[0].generation_run,
    }
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [(p["benchmark"], p["question_id"], p["final_answer"], p["correct"], p["steps"]) for p in lines] == [
        ("arith", "m1", "42", True, 2),
        ("arith", "m2", "\\boxed{5}", True, 1),
        ("arith", "m3", "8", False, 1),
        ("trivia", "t1", "Shakespeare", True, 1),
        ("trivia", "t2", "Lyon", False, 1),
    ]
    assert table.splitlines()[:3] == [
        "| Run | arith | trivia | Average |",
        "|---|---:|---:|---:|",
        "| A | 66.7 | 50.0 | 58.3 |",
    ]
    assert (out / "table.csv").read_text() == (
        f"run,eval_run,arith,trivia,average\nA,{result.eval_run},66.6667,50.0000,58.3333\n"
    )
    assert "A & 66.7 & 50.0 & 58.3 \\\\" in (out / "table.tex").read_text()


def test_runs_share_a_benchmark_data_set_and_report_side_by_side(tmp_path: Path, files, capsys) -> None:
    db = tmp_path / "e.duckdb"
    a = evaluate(db, config(files, "a"), progress=False, backend=student("a"))
    b = evaluate(db, config(files, "b"), progress=False, backend=student("b"))
    assert a.eval_run != b.eval_run
    rows = stored(db)
    # Each run takes its own sample index in eval:<benchmark>; the questions are stored once.
    assert [(d, q, s, m) for d, q, s, m, _, _ in rows] == [
        *(("eval:arith", q, 0, "student-a") for q in ("m1", "m2", "m3")),
        *(("eval:arith", q, 1, "student-b") for q in ("m1", "m2", "m3")),
        *(("eval:trivia", q, 0, "student-a") for q in ("t1", "t2")),
        *(("eval:trivia", q, 1, "student-b") for q in ("t1", "t2")),
    ]
    assert [c for *_, c in rows] == [
        ANSWERS[w][q][1]
        for w, qs in (("a", "m"), ("b", "m"), ("a", "t"), ("b", "t"))
        for q in ANSWERS[w]
        if q.startswith(qs)
    ]
    out = tmp_path / "report"
    assert main(["eval-report", "--db", str(db), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[:4] == [
        "| Run | arith | trivia | Average |",
        "|---|---:|---:|---:|",
        "| A | **66.7** | **50.0** | **58.3** |",
        "| B | **66.7** | 0.0 | 33.3 |",
    ]
    assert (
        "bold: the best per column (every tied value)" in printed
        and "Graders: arith math (math-verify exact match); trivia qa (normalised exact match)." in printed
    )
    # Named runs, in the order given.
    assert main(["eval-report", "--db", str(db), "--out", str(out), "B", a.eval_run]) == 0
    assert [line.split(" | ")[0] for line in capsys.readouterr().out.splitlines()[2:4]] == ["| B", "| A"]
    assert (out / "table.csv").read_text().splitlines()[1].startswith(f"B,{b.eval_run},66.6667,0.0000,")
    with pytest.raises(ValueError, match=r"no eval run nope in the store \(eval runs: eval-"):
        main(["eval-report", "--db", str(db), "--out", str(out), "nope", "--debug"])


def test_rerun_resumes_and_a_larger_limit_extends(tmp_path: Path, files) -> None:
    db = tmp_path / "e.duckdb"
    first = evaluate(db, config(files, "a", limit=2), progress=False, backend=student("a"))
    assert [b.n for b in first.benchmarks] == [2, 2]
    model = student("a")
    again = evaluate(db, config(files, "a", limit=2), progress=False, backend=model)
    assert model.batches == [] and again.eval_run == first.eval_run
    assert again.results_json() == first.results_json()
    more = evaluate(db, config(files, "a"), progress=False, backend=model)
    assert more.eval_run == first.eval_run and [b.n for b in more.benchmarks] == [3, 2]
    assert {r.messages[1]["content"].split("\n")[1] for batch in model.batches for r in batch} == {
        "What is 10 minus 1?"
    }
    with Store(db, read_only=True) as store:
        assert store.sql("SELECT count(*), count(DISTINCT trajectory_id) FROM trajectories").row(0) == (5, 5)
        assert store.sql("SELECT benchmark, questions, correct FROM eval_runs ORDER BY 1").rows() == [
            ("arith", 3, 2),
            ("trivia", 2, 1),
        ]


class Judge:
    """A judge model double: CORRECT when the answer mentions the reference's key word."""

    name, model_id = "scripted", "scripted-judge"

    def __init__(self) -> None:
        self.asked = 0

    def generate(self, requests):
        self.asked += len(requests)
        out = []
        for r in requests:
            prompt = r.messages[0]["content"]
            gold = prompt.split("Reference answer: ")[1].split("\n")[0]
            answer = prompt.split("Assistant's answer: ")[1].split("\n")[0]
            key = gold.split()[-1].strip('"[]')
            verdict = "CORRECT" if key in answer else "INCORRECT"
            out.append(Completion(f"It says {answer}.\nVerdict: {verdict}", 5, "stop"))
        return out

    def close(self) -> None:
        pass


def test_a_judge_regrades_the_qa_trajectories_and_math_stays_math_verify(tmp_path: Path, files) -> None:
    db = tmp_path / "e.duckdb"
    evaluate(db, config(files, "b"), progress=False, backend=student("b"))
    judge, model = Judge(), student("b")
    judged = evaluate(
        db, config(files, "b", grader="judge", judge_model="scripted-judge"), progress=False, backend=model, judge=judge
    )
    # Same answers, no new generation: the judge accepts "The city of Paris" that exact match refused.
    assert model.batches == [] and judge.asked == 2
    by_name = {b.name: b for b in judged.benchmarks}
    assert (by_name["trivia"].grader, by_name["trivia"].correct) == ("judge:scripted-judge", 1)
    assert (by_name["arith"].grader, by_name["arith"].correct) == ("math", 2)
    with Store(db, read_only=True) as store:
        assert store.sql("SELECT DISTINCT generation_run FROM eval_runs WHERE benchmark = 'trivia'").height == 1
        assert store.sql("SELECT grader, correct FROM eval_runs ORDER BY eval_run, benchmark").height == 4


def test_self_consistency_is_part_of_the_protocol(tmp_path: Path, files) -> None:
    db = tmp_path / "e.duckdb"
    plain = evaluate(db, config(files, "a", limit=1), progress=False, backend=student("a"))
    model = student("a")
    voted = evaluate(db, config(files, "a", limit=1, self_consistency=3), progress=False, backend=model)
    assert voted.eval_run != plain.eval_run
    assert [b.correct for b in voted.benchmarks] == [1, 1]
    # 3 candidates per step: m1's two steps, then t1's one (benchmarks run one after the other).
    assert [len(batch) for batch in model.batches] == [3, 3, 3]
    assert {(r.temperature, r.top_p) for batch in model.batches for r in batch} == {(0.4, 0.8)}
    with Store(db, read_only=True) as store:
        assert store.sql("SELECT DISTINCT protocol->>'self_consistency' FROM eval_runs ORDER BY 1").rows() == [
            ("1",),
            ("3",),
        ]


def test_the_student_sees_the_prompt_it_was_trained_with(tmp_path: Path, files) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "train_config.json").write_text(
        json.dumps(
            {
                "config": {"profile": None},
                "data": {"system_prompt": "You are a trained agent.", "encode": {"profiles": {"smolagents": 3}}},
            }
        )
    )
    prompt = trained_prompt("tiny", str(adapter))
    assert (prompt.text, prompt.source, prompt.profile) == (
        "You are a trained agent.",
        f"trained: {adapter / 'train_config.json'}",
        "smolagents",
    )
    # A merged model folder carries the record too; a folder without one gets the packaged prompt.
    assert trained_prompt(str(adapter), None).text == "You are a trained agent."
    assert trained_prompt(str(tmp_path), None).source == "packaged"
    (adapter / "train_config.json").write_text(json.dumps({"config": {}, "data": {"encode": {}}}))
    assert trained_prompt("tiny", str(adapter)).source.startswith("packaged (")

    (adapter / "train_config.json").write_text(json.dumps({"config": {}, "data": {"system_prompt": "Trained."}}))
    db = tmp_path / "e.duckdb"
    # The transformers backend would apply the adapter; with a given backend only its prompt is read.
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    evaluate(db, config(files, "a", limit=1, adapter=str(adapter)), progress=False, backend=student("a"))
    with Store(db, read_only=True) as store:
        systems = store.sql("SELECT DISTINCT text FROM messages WHERE role = 'system'").rows()
        sources = store.sql("SELECT DISTINCT system_prompt_source, adapter, length(adapter_hash) FROM eval_runs").rows()
    assert systems == [("Trained.",)]
    assert sources == [(f"trained: {adapter / 'train_config.json'}", str(adapter.resolve()), 64)]


def test_benchmark_names_resolve_to_the_shared_question_files(shared_data: Path) -> None:
    found = resolve_benchmarks("math500, hotpotqa,GSM-hard")
    assert [(b.name, b.path.relative_to(shared_data / "questions").as_posix()) for b in found] == [
        ("HotpotQA", "qa/test/hotpotqa_500_20250422.json"),
        ("MATH-500", "math/test/math_500_20250414.json"),
        ("GSM-hard", "math/test/gsm_hard_500_20250507.json"),
    ]
    assert [b.name for b in resolve_benchmarks("all")] == [
        "HotpotQA",
        "MuSiQue",
        "Bamboogle",
        "2WikiMultiHopQA",
        "MATH-500",
        "AIME",
        "OlymMath",
        "GSM-hard",
    ]
    with pytest.raises(ValueError, match="AMC23 and Gaokao .* are not in the shared data; pass their question files"):
        resolve_benchmarks("HotpotQA,AMC23")
    with pytest.raises(ValueError, match=r"--benchmarks nope: no such benchmark or file \(names: HotpotQA, MuSiQue"):
        resolve_benchmarks("nope")


def test_cli_errors_are_one_line_before_any_model_loads(tmp_path: Path, files, capsys) -> None:
    db = tmp_path / "e.duckdb"
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    cases = [
        (
            ["--benchmarks", "Gaokao"],
            "--benchmarks Gaokao: AMC23 and Gaokao (in the paper's Table 2) are not in "
            "the shared data; pass their question files as paths",
        ),
        (
            ["--grader", "judge"],
            "--grader judge needs --judge-model, and --judge-model is used only with --grader judge",
        ),
        (
            ["--out", str(taken)],
            f"--out {taken}: holds notes.txt, not an earlier evaluation's files; give a new or empty folder",
        ),
        (["--adapter", str(tmp_path)], f"--adapter {tmp_path}: no adapter_config.json (not a peft adapter folder)"),
        (
            ["--tools", "python", "--corpus", "wiki-summaries"],
            "--corpus and --retriever-url serve web_search, which --tools leaves out",
        ),
    ]
    for extra, message in cases:
        argv = [
            "eval",
            "--model",
            "tiny",
            "--benchmarks",
            str(files["arith"]),
            "--db",
            str(db),
            "--out",
            str(tmp_path / "out"),
            *extra,
        ]
        assert main(argv) == 2
        assert capsys.readouterr().err == f"curate eval: error: {message}\n"
