"""`curate demo`: the whole pipeline on a small synthetic store, end to end.

generate (SmolLM2 as a weak teacher agent on real questions with tools, graded, in its own store)
-> synth -> ingest -> stats -> score (student NLL) -> select min_nll -> export (HF dataset)
-> report (HTML: store, tertile tables and Figs 3-4, the selection next to two alternatives, trajectory
viewer with token NLLs) -> a few smartad LoRA steps on the export
(on the tiny model by default: a real student's LoRA steps take minutes each on a CPU)
-> `curate eval` of that student alone and with its adapter on a few questions (Table 2 shaped).
Every step is the library call the matching subcommand makes; re-running resumes (ingest is
idempotent, scoring skips what is done, selection and export are replaced).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoConfig:
    """What the demo builds; written to OUT/demo_config.json."""

    out: str = "demo_out"
    student: str = "smollm2"
    questions: int = 4
    k: int = 4
    train_student: str = "tiny"
    train_steps: int = 6
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
    eval_questions: int = 3  # of the bundled MATH sample in the evaluation step


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


def run_demo(cfg: DemoConfig) -> dict[str, str]:
    """Run every stage into cfg.out and return where the artefacts are."""
    import polars as pl

    from curate.eval.outputs import demo as eval_demo
    from curate.export import demo as export_demo
    from curate.report.config import ReportConfig
    from curate.report.report import write_report
    from curate.score import nll_extremes, score_store
    from curate.select import SelectConfig, select
    from curate.store import Store
    from curate.train.recipe import demo as train_demo

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

    _step("report: store, tertile tables and figures, min_nll next to median_nll and random, trajectories")
    with Store(db) as store:
        for policy in ("median_nll", "random"):
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

    # LoRA steps on a real student take minutes each on a CPU; the demo shows the loop on a tiny one.
    _step(f"train {cfg.train_student} {cfg.train_steps} steps with the smartad loss on the export")
    trained = train_demo(str(out / "export"), str(out / "adapter"), steps=cfg.train_steps, student=cfg.train_student)
    for line in trained.lines():
        print(line)

    _step(
        f"evaluate {cfg.train_student} alone and with its adapter as an agent on {cfg.eval_questions} questions "
        "of the bundled MATH sample"
    )
    # A store of its own: evaluation runs in the demo's store would be scored and selected on a rerun.
    print(
        eval_demo(out / "eval.duckdb", out / "eval", cfg.train_student, str(out / "adapter"), cfg.eval_questions),
        end="",
    )
    print(
        "A handful of questions (of the set the demo trained on) says nothing about quality: this shows the "
        "mechanics. Real numbers: curate eval --benchmarks HotpotQA,MATH-500 ... (README)."
    )

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
