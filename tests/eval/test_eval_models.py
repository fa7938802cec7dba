"""`curate eval` with real models: SmolLM2 and a LoRA adapter from `curate train` on real benchmark
questions (every verdict graded again here, independently); an adapter trained to always answer 42
really changes the answers; kill -9 mid-evaluation, then the same command, gives the uninterrupted table."""

from __future__ import annotations

import json
import re
import string
import subprocess
import sys
from pathlib import Path

import pytest
from agent_script import kill_when_paused
from train_rows import write_export

from curate.agent.prompts import load_prompts
from curate.cli import main
from curate.store import Store

# `curate eval` that stops inside its second write to the second benchmark's data set (that write's
# transaction open, the benchmark before it finished and recorded), says so and waits to be killed:
# the kill lands at the same point on a machine of any speed.
PAUSED = "paused inside a write of the second benchmark"
PAUSING = f"""
import sys, threading
from curate.agent import writer as job
from curate.cli import main

real, calls = job.write_records, []

def write_records(con, dataset, *args, **kwargs):
    ids = real(con, dataset, *args, **kwargs)
    calls.append(dataset)
    if calls.count("eval:trivia") == 2:
        print({PAUSED!r}, file=sys.stderr, flush=True)
        threading.Event().wait()
    return ids

job.write_records = write_records
sys.exit(main())
"""
PLAIN = "import sys; from curate.cli import main; sys.exit(main())"


def _questions(folder: Path) -> str:
    arith = [{"id": f"m{i}", "question": f"What is {i} times 6?", "answer": str(6 * i)} for i in range(1, 4)]
    trivia = [
        {"id": f"t{i}", "question": q, "answer": a}
        for i, (q, a) in enumerate(
            [
                ("Who wrote Hamlet?", "Shakespeare"),
                ("What is the capital of France?", "Paris"),
                ("What colour is the sky?", "blue"),
            ]
        )
    ]
    paths = []
    for name, rows in (("arith", arith), ("trivia", trivia)):
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(str(path))
    return ",".join(paths)


def _eval(script: str, db: Path, out: Path, model: Path, benchmarks: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        script,
        "eval",
        "--db",
        str(db),
        "--out",
        str(out),
        "--model",
        str(model),
        "--benchmarks",
        benchmarks,
        "--tools",
        "python",
        "--max-steps",
        "2",
        "--max-new-tokens",
        "12",
        "--slots",
        "1",
        "--write-every",
        "1",
        "--quiet",
    ]


def _outputs(out: Path) -> dict[str, str]:
    return {
        name: (out / name).read_text()
        for name in ("results.json", "predictions.jsonl", "table.md", "table.csv", "table.tex")
    }


def _eval_rows(db: Path) -> list[tuple]:
    with Store(db, read_only=True) as store:
        return store.sql(
            "SELECT eval_run, benchmark, generation_run, questions, correct, pass_at_1, grader "
            "FROM eval_runs ORDER BY benchmark"
        ).rows()


def test_kill_minus_9_mid_eval_then_rerun_gives_the_uninterrupted_table(tmp_path: Path, tiny_model_dir: Path) -> None:
    benchmarks = _questions(tmp_path)
    db, out = tmp_path / "killed.duckdb", tmp_path / "killed"
    kill_when_paused(_eval(PAUSING, db, out, tiny_model_dir, benchmarks), PAUSED)
    with Store(db, read_only=True) as store:  # arith whole and recorded; trivia's committed write only
        stored = store.sql("SELECT dataset, count(*) FROM trajectories GROUP BY 1 ORDER BY 1").rows()
        recorded = store.sql("SELECT benchmark FROM eval_runs").rows()
    assert (stored, recorded) == ([("eval:arith", 3), ("eval:trivia", 1)], [("arith",)])

    done = subprocess.run(_eval(PLAIN, db, out, tiny_model_dir, benchmarks), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    clean_db, clean_out = tmp_path / "clean.duckdb", tmp_path / "clean"
    clean = subprocess.run(
        _eval(PLAIN, clean_db, clean_out, tiny_model_dir, benchmarks), capture_output=True, text=True
    )
    assert clean.returncode == 0, clean.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == clean.stdout.splitlines()[-1]
    assert re.fullmatch(r"eval_run=eval-[0-9a-f]{12}", done.stdout.splitlines()[-1])
    assert _outputs(out) == _outputs(clean_out)
    assert _eval_rows(db) == _eval_rows(clean_db) and len(_eval_rows(db)) == 2
    with Store(db, read_only=True) as store:
        per_question = store.sql(
            "SELECT dataset, count(*), count(DISTINCT question_id) FROM trajectories GROUP BY 1 ORDER BY 1"
        ).rows()
    assert per_question == [("eval:arith", 3, 3), ("eval:trivia", 3, 3)]


def _squad(text: str) -> str:
    """SQuAD normalisation, written again here: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def _regrade(benchmark: str, gold: str, answer: str | None) -> bool:
    """An independent verdict: math-verify called directly for math, exact match of SQuAD-normalised text for QA."""
    if answer is None:
        return False
    if benchmark == "MATH-500":
        from math_verify import parse, verify

        return bool(verify(parse(f"${gold}$"), parse(answer)))
    golds = json.loads(gold) if gold.startswith("[") else [gold]
    return any(_squad(g) == _squad(answer) for g in golds)


def test_smollm2_and_its_curate_train_adapter_on_two_real_benchmarks(tmp_path: Path, shared_data: Path, capsys) -> None:
    from train_rows import export_rows

    export = write_export(tmp_path / "export", export_rows(2))
    adapter = tmp_path / "adapter"
    assert (
        main(
            [
                "train",
                "--data",
                str(export),
                "--student",
                "smollm2",
                "--out",
                str(adapter),
                "--max-steps",
                "1",
                "--batch-size",
                "1",
                "--lora-r",
                "4",
                "--lora-alpha",
                "8",
                "--lr",
                "1e-3",
            ]
        )
        == 0
    )
    db = tmp_path / "eval.duckdb"
    # Lean: python tool only, one step of 16 tokens; the base model gets a short prompt too (a packaged
    # prompt of ~2k tokens costs minutes of prefill on 2 cores), the adapter its training data's.
    system = tmp_path / "system.txt"
    system.write_text("You solve tasks with code.")
    runs = {}
    for name, extra in (("base", ["--system-prompt", str(system)]), ("lora", ["--adapter", str(adapter)])):
        capsys.readouterr()
        assert (
            main(
                [
                    "eval",
                    "--db",
                    str(db),
                    "--model",
                    "smollm2",
                    *extra,
                    "--benchmarks",
                    "math500,HotpotQA",
                    "--limit",
                    "2",
                    "--max-steps",
                    "1",
                    "--max-new-tokens",
                    "16",
                    "--tools",
                    "python",
                    "--out",
                    str(tmp_path / name),
                    "--name",
                    name,
                    "--quiet",
                ]
            )
            == 0
        )
        last = capsys.readouterr().out.splitlines()[-1]
        runs[name] = json.loads((tmp_path / name / "results.json").read_text())
        assert last == f"eval_run={runs[name]['eval_run']}"
        assert list(runs[name]["benchmarks"]) == ["HotpotQA", "MATH-500"]  # the paper's column order
    assert runs["base"]["eval_run"] != runs["lora"]["eval_run"]
    assert runs["lora"]["adapter"] == str(adapter) and runs["base"]["adapter"] is None

    with Store(db, read_only=True) as store:
        stored = store.sql(
            "SELECT e.name, e.benchmark, t.question_id, t.generated_answer, t.correct, q.gold_answer, "
            "(SELECT text FROM messages m WHERE m.trajectory_id = t.trajectory_id AND position = 0) "
            "AS system FROM eval_runs e JOIN trajectories t USING (generation_run) JOIN questions q "
            "ON q.dataset = t.dataset AND q.question_id = t.question_id ORDER BY 1, 2, t.source_line"
        ).to_dicts()
        hashes = dict(store.sql("SELECT DISTINCT name, adapter_hash FROM eval_runs").rows())
        sources = dict(store.sql("SELECT DISTINCT name, system_prompt_source FROM eval_runs").rows())
    assert len(stored) == 8  # 2 runs x 2 benchmarks x 2 questions, one trajectory each
    for name, result in runs.items():
        for bench, numbers in result["benchmarks"].items():
            rows = [r for r in stored if (r["name"], r["benchmark"]) == (name, bench)]
            # Each stored verdict is the one an independent grading gives; pass@1 is their mean.
            assert [r["correct"] for r in rows] == [
                _regrade(bench, r["gold_answer"], r["generated_answer"]) for r in rows
            ]
            assert (numbers["n"], numbers["correct"]) == (2, sum(r["correct"] for r in rows))
            assert numbers["pass@1"] == pytest.approx(100 * sum(r["correct"] for r in rows) / 2)
            assert numbers["grader"] == ("math" if bench == "MATH-500" else "qa")
        assert result["average"] == pytest.approx(sum(b["pass@1"] for b in result["benchmarks"].values()) / 2)
    # The adapter's run shows the student its training data's system prompt (recorded by curate train).
    assert {r["system"] for r in stored} == {"You solve tasks with code."}
    assert hashes["base"] is None and len(hashes["lora"]) == 64
    assert sources == {"base": f"file: {system}", "lora": f"trained: {adapter / 'train_config.json'}"}

    capsys.readouterr()
    assert main(["eval-report", "--db", str(db), "--out", str(tmp_path / "report")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| Run | HotpotQA | MATH-500 | Average |"
    assert [line.split(" | ")[0] for line in table[2:4]] == ["| base", "| lora"]


SYSTEM = "You answer every task with code."
FORTY_TWO = "Thought: 42.\nCode:\n```py\nfinal_answer(42)\n```<end_code>"


def _student(folder: Path) -> Path:
    """A tiny Qwen2 whose (tied) embeddings are scaled x10, so that LoRA alone can make its logits sharp."""
    from curate.models.tiny import build_model, build_tokenizer

    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer), seed=0, hidden=128)
    model.get_input_embeddings().weight.data *= 10
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _adapter_that_answers_42(student: Path, out: Path) -> Path:
    """A LoRA adapter fitted (plain Adam, until greedy decoding gives the answer on every training task)
    to answer every task with `final_answer(42)`, saved as `curate train` saves one: peft files, and
    train_config.json with the system prompt of its data."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curate.agent.backends import GenRequest, chat_prompt

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(student)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32),
        LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"),
    )
    task = load_prompts([], []).task_message
    rows = []
    for question in ("What is 1 plus 2?", "Name a colour.", "Who wrote Hamlet?", "What is 9 minus 4?"):
        chat = ({"role": "system", "content": SYSTEM}, {"role": "user", "content": task(question)})
        prompt = tokenizer(chat_prompt(tokenizer, GenRequest(chat)), add_special_tokens=False)["input_ids"]
        answer = tokenizer(FORTY_TWO, add_special_tokens=False)["input_ids"]
        rows.append((torch.tensor([prompt + answer]), len(prompt)))
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    for _ in range(300):
        losses, learnt = [], True
        for ids, start in rows:
            labels = ids.clone()
            labels[0, :start] = -100
            out_ = model(input_ids=ids, labels=labels)
            losses.append(out_.loss)
            learnt &= bool((out_.logits[0, start - 1 : -1].argmax(-1) == ids[0, start:]).all())
        loss = sum(losses) / len(losses)
        if learnt and loss.item() < 0.1:
            break
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert learnt, f"the adapter did not learn the answer (loss {loss.item():.3f})"
    model.save_pretrained(out)
    (out / "train_config.json").write_text(json.dumps({"data": {"system_prompt": SYSTEM}}))
    return out


def test_an_adapter_trained_to_answer_42_is_applied(tmp_path: Path) -> None:
    from curate.eval.evaluate import EvalConfig, evaluate

    student = _student(tmp_path / "student")
    adapter = _adapter_that_answers_42(student, tmp_path / "adapter")
    questions = tmp_path / "times.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"id": f"x{i}", "question": f"What is {i} times 6?", "answer": str(6 * i)}) + "\n"
            for i in (3, 7, 11)
        )
    )
    system = tmp_path / "system.txt"  # the base model sees the same prompt: only the adapter differs
    system.write_text(SYSTEM)
    db = tmp_path / "e.duckdb"
    common = dict(model=str(student), benchmarks=str(questions), tools=("python",), max_steps=1, max_new_tokens=40)
    base = evaluate(db, EvalConfig(**common, system_prompt=str(system)), progress=False)
    tuned = evaluate(db, EvalConfig(**common, adapter=str(adapter)), progress=False)
    answers = {
        run: [(p["question_id"], p["final_answer"], p["correct"]) for p in result.benchmarks[0].predictions]
        for run, result in (("base", base), ("tuned", tuned))
    }
    assert answers["tuned"] == [("x3", "42", False), ("x7", "42", True), ("x11", "42", False)]
    assert all(answer != "42" and not correct for _, answer, correct in answers["base"]), answers["base"]
    assert (base.benchmarks[0].pass_at_1, tuned.benchmarks[0].pass_at_1) == (0.0, pytest.approx(100 / 3))
    with Store(db, read_only=True) as store:
        systems = store.sql("SELECT DISTINCT text FROM messages WHERE role = 'system' AND position = 0").rows()
        sources = store.sql("SELECT system_prompt_source FROM eval_runs ORDER BY started_at").rows()
    assert systems == [(SYSTEM,)]
    assert sources == [(f"file: {system}",), (f"trained: {adapter / 'train_config.json'}",)]
