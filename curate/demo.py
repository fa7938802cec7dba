"""`curate demo`: the whole pipeline on a small synthetic store, end to end.

synth -> ingest -> stats -> score (student NLL) -> select min_nll -> export (HF dataset)
-> report (HTML: store, tertile tables and Figs 3-4, the selection next to two alternatives, trajectory
viewer with token NLLs) -> a few smartad LoRA steps on the export
(on the tiny model by default: a real student's LoRA steps take minutes each on a CPU).
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


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run_demo(cfg: DemoConfig) -> dict[str, str]:
    """Run every stage into cfg.out and return where the artefacts are."""
    import polars as pl

    from curate import synth
    from curate.export import demo as export_demo
    from curate.report.config import ReportConfig
    from curate.report.report import write_report
    from curate.score import nll_extremes, score_store
    from curate.select import SelectConfig, select
    from curate.store import Store
    from curate.train.recipe import demo as train_demo

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    db = out / "curate.duckdb"
    start = time.perf_counter()

    _step(f"synthetic teacher runs (labelled synthetic) -> {db}")
    with Store(db) as store:
        synth.demo_store(store, out / "runs", questions=cfg.questions, k=cfg.k, seed=cfg.seed)

    _step(f"score every trajectory under the student ({cfg.student})")
    run_id = score_store(db, cfg.student)
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
    report = write_report(ReportConfig(db=str(db), out=str(out / "report"), run=run_id,
                                       questions=cfg.report_questions, samples=cfg.report_samples,
                                       seed=cfg.seed))
    index = report.index.parent / "figures" / "index.md"
    print(f"report: {report.index} (open it in a browser; figures and tables in {index.parent})")

    # LoRA steps on a real student take minutes each on a CPU; the demo shows the loop on a tiny one.
    _step(f"train {cfg.train_student} {cfg.train_steps} steps with the smartad loss on the export")
    train_demo(str(out / "export"), str(out / "adapter"), steps=cfg.train_steps, student=cfg.train_student)

    where = {"store": str(db), "run_id": run_id, "export": str(out / "export"), "report": str(report.index),
             "figures": str(index), "adapter": str(out / "adapter")}
    _step(f"done in {time.perf_counter() - start:.0f} s")
    for key, value in where.items():
        print(f"{key:>8}: {value}")
    print(f"\nopen the store in any DuckDB client: duckdb {db}")
    return where
