"""`curate demo`: the whole pipeline on a small synthetic store, end to end.

generate (SmolLM2 as a weak teacher agent on real questions with tools, graded, in its own store)
-> synth -> ingest -> stats -> score (student NLL) -> select min_nll -> export (HF dataset)
-> report (HTML: store, tertile tables and Figs 3-4, the selection next to two alternatives, trajectory
viewer with token NLLs) -> a few smartad LoRA steps of the same student (SmolLM2-135M-Instruct by
default) on the export -> `curate eval` of that student alone and with its adapter on a few
questions (Table 2 shaped). The limits keep the whole of it under 5 minutes on 2 CPU cores.
Every step is the library call the matching subcommand makes; re-running resumes (ingest is
idempotent, scoring skips what is done, selection and export are replaced).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class DemoConfig:
    """What the demo builds; written to OUT/demo_config.json."""

    out: str = "demo_out"
    student: str = "smollm2"  # scores the store, trains on the selection, is evaluated
    questions: int = 4
    k: int = 4
    seed: int = 0
    report_questions: int = 2  # per data set in the report's trajectory viewer
    report_samples: int = 2  # per question with token NLLs (each is a student forward pass)
    # A real teacher run: SmolLM2-135M is a weak agent; a first-thought prefix and temperature 0.7
    # keep it closer to the action format; the small limits keep the step to about a minute on 2 cores.
    teacher: str = "smollm2"
    teacher_questions: int = 2
    teacher_k: int = 2
    teacher_max_steps: int = 2
    teacher_max_new_tokens: int = 48
    # LoRA steps of the student: on 2 CPU cores a SmolLM2 step costs ~10-15 s per 1,000 tokens, so a
    # step takes one whole trajectory (the demo's are at most ~1,400 tokens, so none is cut) and keeps
    # its activations instead of recomputing them; lr well above the paper's, so two steps move the weights.
    train_steps: int = 2
    train_rows: int = 1  # trajectories per optimiser step
    train_max_length: int = 1536
    train_lr: float = 5e-3
    # The evaluation: the first questions of the bundled MATH sample, one action and the answer.
    eval_questions: int = 3
    eval_max_steps: int = 1
    eval_max_new_tokens: int = 48


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _teacher(cfg: DemoConfig, out: Path, db: Path) -> None:
    """`curate generate` on the first HotpotQA questions, then what each run did and one transcript."""
    import polars as pl

    from curate.agent.generate import GenerateConfig, generate
    from curate.store import Store

    from .ingest import synth

    examples, _where = synth.load_questions("hotpotqa")
    questions = out / "teacher_questions.jsonl"
    questions.write_text("".join(json.dumps(e) + "\n" for e in examples[: cfg.teacher_questions]))
    summary = generate(
        db,
        GenerateConfig(
            questions=str(questions),
            dataset="teacher-hotpotqa",
            model=cfg.teacher,
            k=cfg.teacher_k,
            temperature=0.7,
            top_p=0.9,
            max_steps=cfg.teacher_max_steps,
            max_new_tokens=cfg.teacher_max_new_tokens,
            seed=cfg.seed,
            corpus="wiki-summaries",
            first_thought_prefix=True,
            log_out=str(out / "teacher_logs.jsonl"),
        ),
    )
    print(summary.line())
    with Store(db, read_only=True) as store:
        rows = store.run("generate/run_rows", run=summary.generation_run)
        first = store.run("generate/run_transcript", run=summary.generation_run).rows()
    with pl.Config(
        tbl_rows=-1, tbl_cols=-1, tbl_width_chars=180, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True
    ):
        print(rows)
    print("the first run, as stored (system prompt and task left out; texts cut at 300 characters):")
    for role, text in first:
        print(f"  [{role}] {text[:300]}")
    print(f"generation_run={summary.generation_run}; its logs: {out / 'teacher_logs.jsonl'}")


def _train(cfg: DemoConfig, out: Path) -> None:
    """A few smartad LoRA steps of the student on the export, and each step's per-segment losses."""
    from curate.train.config import TrainConfig
    from curate.train.recipe import DemoTraining, train

    log = train(
        TrainConfig(
            data=str(out / "export"),
            student=cfg.student,
            out=str(out / "adapter"),
            loss="smartad",
            max_steps=cfg.train_steps,
            batch_size=cfg.train_rows,
            max_length=cfg.train_max_length,
            gradient_checkpointing=False,
            lr=cfg.train_lr,
            lora_r=8,
            lora_alpha=16,
            seed=cfg.seed,
            save_every=cfg.train_steps,
        )
    ).log
    for line in DemoTraining(log[0], log[-1]).lines():
        print(line)
    print(
        f"Each step trains on other trajectories of the export ({cfg.train_rows} a step): the losses of two "
        "steps are not a before and after on the same tokens."
    )


def _evaluate(cfg: DemoConfig, out: Path) -> None:
    """`curate eval` of the student alone and with its adapter; Table 2 of both, each question's
    answers, and what so few questions can and cannot show."""
    from importlib import resources

    from curate.eval.evaluate import EvalConfig, evaluate
    from curate.eval.tables import load_rows, write_tables
    from curate.store import Store

    db = out / "eval.duckdb"  # its own store: evaluation runs in the demo's would be scored on a rerun
    common = EvalConfig(
        model=cfg.student,
        benchmarks=str(resources.files("curate") / "assets" / "math_sample.json"),
        limit=cfg.eval_questions,
        max_steps=cfg.eval_max_steps,
        max_new_tokens=cfg.eval_max_new_tokens,
        tools=("python",),
    )
    base = evaluate(db, replace(common, name=f"{cfg.student} (base)"), progress=False)
    tuned = evaluate(db, replace(common, adapter=str(out / "adapter"), name=f"{cfg.student} + adapter"), progress=False)
    with Store(db, read_only=True) as store:
        rows = load_rows(store.con, [base.eval_run, tuned.eval_run])
    print(write_tables(rows, out / "eval"), end="")
    [alone], [adapted] = base.benchmarks, tuned.benchmarks
    answers = {p["question_id"]: p for p in adapted.predictions}
    changed = 0
    for before in alone.predictions:
        after = answers[before["question_id"]]
        changed += before["final_answer"] != after["final_answer"]
        print(f"  question {before['question_id']}: alone {_answer(before)}; with the adapter {_answer(after)}")
    print(
        f"What it shows: {cfg.student} answered {alone.correct} of {alone.n} alone and {adapted.correct} of "
        f"{adapted.n} with its adapter, and the adapter changed {changed} of {alone.n} final answers. "
        f"{alone.n} questions (of the set the demo trained on) say nothing about quality: this shows the "
        "mechanics. Real numbers: curate eval --benchmarks HotpotQA,MATH-500 ... (README)."
    )


def _answer(prediction: dict) -> str:
    text = " ".join(str(prediction["final_answer"] or "").split())
    verdict = "correct" if prediction["correct"] else "wrong"
    return f'"{text[:60]}" ({verdict})' if text else f"no answer ({verdict})"


def run_demo(cfg: DemoConfig) -> dict[str, str]:
    """Run every stage into cfg.out and return where the artefacts are."""
    import polars as pl

    from curate.export import demo as export_demo
    from curate.report.config import ReportConfig
    from curate.report.report import write_report
    from curate.score import nll_extremes, score_store
    from curate.select import SelectConfig, select
    from curate.store import Store

    from .ingest import synth

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    db = out / "curate.duckdb"
    start = time.perf_counter()

    teacher_db = out / "teacher.duckdb"
    _step(
        f"a real teacher agent: {cfg.teacher} on {cfg.teacher_questions} HotpotQA questions x "
        f"K={cfg.teacher_k}, python + web_search over wiki-summaries, graded -> {teacher_db}"
    )
    _teacher(cfg, out, teacher_db)

    _step(f"synthetic teacher runs (labelled synthetic) -> {db}")
    with Store(db) as store:
        for line in synth.demo_store(store, out / "runs", questions=cfg.questions, k=cfg.k, seed=cfg.seed).lines():
            print(line)

    _step(f"score every trajectory under the student ({cfg.student})")
    scored = score_store(db, cfg.student)
    for line in scored.lines():
        print(line)
    run_id = scored.run_id
    with Store(db, read_only=True) as store:
        extremes = nll_extremes(store.con, run_id).drop("trajectory_id", "truncated")
    print("lowest and highest trajectory NLL:")
    with pl.Config(tbl_rows=-1, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(extremes)

    _step("select min_nll per question and export a Hugging Face dataset")
    with Store(db) as store:
        for line in export_demo(store, out / "export", run_id):
            print(line)

    _step("report: store, tertile tables and figures, min_nll next to min_rsr, median_nll and random, trajectories")
    with Store(db) as store:
        for policy in ("min_rsr", "median_nll", "random"):
            select(store, SelectConfig(policy=policy, run=run_id, seed=cfg.seed))
    report = write_report(
        ReportConfig(
            db=str(db),
            out=str(out / "report"),
            run=run_id,
            questions=cfg.report_questions,
            samples=cfg.report_samples,
            seed=cfg.seed,
        )
    )
    index = report.index.parent / "figures" / "index.md"
    print(f"report: {report.index} (open it in a browser; figures and tables in {index.parent})")

    _step(
        f"train {cfg.student} with LoRA, {cfg.train_steps} steps of {cfg.train_rows} trajectory, smartad loss, "
        "on the export"
    )
    _train(cfg, out)

    _step(
        f"evaluate {cfg.student} alone and with its adapter as an agent on {cfg.eval_questions} questions of the "
        f"bundled MATH sample (python tool, {cfg.eval_max_steps} step(s) of {cfg.eval_max_new_tokens} tokens)"
    )
    _evaluate(cfg, out)

    where = {
        "teacher": str(teacher_db),
        "store": str(db),
        "run_id": run_id,
        "export": str(out / "export"),
        "report": str(report.index),
        "figures": str(index),
        "adapter": str(out / "adapter"),
        "eval": str(out / "eval" / "table.md"),
        "eval db": str(out / "eval.duckdb"),
    }
    _step(f"done in {time.perf_counter() - start:.0f} s")
    for key, value in where.items():
        print(f"{key:>8}: {value}")
    print(f"\nopen the store in any DuckDB client: duckdb {db}")
    return where
