"""Does a real student's NLL track success? SmolLM2-135M-Instruct on real MINT GSM8K runs.

Takes a fixed subset of ../shared/data/trajectories/mint/mint_gsm8k.jsonl.gz (the first --questions
questions by task id, all 55 runs of each, one run per model), scores every run with the student
(float32 on CPU; each run capped at --max-length tokens, the few longer ones scored over what fits
and flagged), and with a random-weights control (the tiny model) on the same runs, then prints side
by side, through `curate.analysis`:
- the within-question Spearman correlation of NLL with success (mean over questions with mixed
  outcomes, and their count);
- per-question tertiles by rank within each question: accuracy and mean NLL per bucket, overall and
  per question;
- across the 55 teacher models, the Spearman correlation of a model's mean NLL with its success
  rate (the confound: weak models write repetitive, low-NLL runs that fail).
The store and scores persist in --out, so an interrupted run resumes where it stopped.

Run: python -m bench.real_student [--questions 8] [--max-length 4096] [--student smollm2]
     [--control tiny] [--out bench_out/real_student]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from curate import analysis
from curate.ingest import IngestOptions, ingest
from curate.models import resolve_student
from curate.score import score_store
from curate.shared_data import require_shared_data
from curate.store import Store

DATASET = "mint_gsm8k"


@dataclass(frozen=True)
class BenchConfig:
    """The subset and the students (written to OUT/config.json)."""

    questions: int = 8
    max_length: int = 4096
    student: str = "smollm2"
    control: str = "tiny"
    out: str = "bench_out/real_student"


def write_subset(config: BenchConfig, path: Path) -> list[str]:
    """Copy the runs of the first `questions` task ids (numeric order) into a MINT file; their ids."""
    source = require_shared_data() / "trajectories" / "mint" / "mint_gsm8k.jsonl.gz"
    with gzip.open(source, "rt") as fh:
        records = [json.loads(line) for line in fh]
    keep = sorted({r["task"]["task_id"] for r in records}, key=int)[: config.questions]
    # mtime=0: the same subset is the same bytes, so re-running the bench never ingests it twice.
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        for record in records:
            if record["task"]["task_id"] in keep:
                fh.write((json.dumps(record) + "\n").encode())
    return [str(k) for k in keep]


def run_scores(db: Path, student: str, max_length: int) -> tuple[str, float]:
    """Score the store under one student; (run id, seconds including the model load)."""
    resolve_student(student)  # materialise first, so its time is not counted as scoring
    started = time.perf_counter()
    scored = score_store(db, student, dataset=DATASET, max_length=max_length, part_size=55)
    seconds = time.perf_counter() - started
    for line in scored.lines():
        print(line)
    return scored.run_id, seconds


def results(con, run_id: str) -> dict[str, pl.DataFrame]:
    """The analysis frames this bench prints, for one scoring run."""
    config = analysis.AnalysisConfig(run_id=run_id, dataset=DATASET, rule="rank")
    stats = analysis.bucket_stats(con, config).filter(pl.col("scope") == "per_question")
    per_q = (
        analysis.buckets(con, config)
        .filter(pl.col("scope") == "per_question")
        .group_by("question_id", "bucket_idx", "bucket")
        .agg(pl.len().alias("n"), (pl.col("correct").mean() * 100).alias("acc"))
    )
    models = analysis.model_stats(con, run_id, DATASET)
    return {"spearman": analysis.spearman(con, config), "stats": stats, "per_q": per_q, "models": models}


def model_rho(models: pl.DataFrame) -> float:
    """Spearman correlation, across teacher models, of mean NLL with success rate."""
    ranked = models.select(pl.col("mean_nll").rank(), pl.col("acc").rank())
    return ranked.select(pl.corr("mean_nll", "acc")).item()


def report(names: list[str], runs: dict[str, dict[str, pl.DataFrame]], timing: dict[str, float]) -> None:
    """Print the comparison tables, one row or column per student."""
    print("\n== scoring time on this machine (model load + forward passes; 0 when resumed) ==")
    for name in names:
        print(f"{name:>14}: {timing[name]:7.1f} s")
    print("\n== within-question Spearman of NLL with success (mean over mixed-outcome questions) ==")
    for name in names:
        row = runs[name]["spearman"].row(0, named=True)
        print(
            f"{name:>14}: rho = {row['mean_rho']:+.3f} over {row['rho_q']} of {row['questions']} questions "
            f"({row['mixed_q']} with mixed outcomes)"
        )
    print("\n== per-question tertiles by rank within question: accuracy % (mean NLL) ==")
    print(f"{'':>14}  " + "  ".join(f"{b:>16}" for b in analysis.BUCKETS) + "   HARD-EASY")
    for name in names:
        stats = runs[name]["stats"].sort("bucket_idx")
        cells = [f"{r['acc']:6.1f} ({r['mean_nll']:6.3f})" for r in stats.iter_rows(named=True)]
        gap = stats["acc"][-1] - stats["acc"][0]
        print(f"{name:>14}  " + "  ".join(f"{c:>16}" for c in cells) + f"   {gap:+6.1f}")
    print("\n== per question: accuracy % in EASY / MEDIUM / HARD (n per bucket) ==")
    header = "  ".join(f"{name:>22}" for name in names)
    print(f"{'question':>8}  {header}")
    tables = {
        name: runs[name]["per_q"]
        .sort("bucket_idx")
        .group_by("question_id", maintain_order=True)
        .agg(pl.col("acc"), pl.col("n"))
        .sort(pl.col("question_id").cast(pl.Int64))
        for name in names
    }
    for i, question in enumerate(tables[names[0]]["question_id"]):
        cells = []
        for name in names:
            row = tables[name].row(i, named=True)
            assert row["question_id"] == question
            cells.append(" / ".join(f"{a:3.0f}" for a in row["acc"]) + f" ({'/'.join(map(str, row['n']))})")
        print(f"{question:>8}  " + "  ".join(f"{c:>22}" for c in cells))
    print("\n== across teacher models: Spearman of mean NLL with success rate (the confound) ==")
    for name in names:
        models = runs[name]["models"]
        print(f"{name:>14}: rho = {model_rho(models):+.3f} over {models.height} models")


def main() -> None:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=defaults.questions)
    parser.add_argument("--max-length", type=int, default=defaults.max_length)
    parser.add_argument("--student", default=defaults.student)
    parser.add_argument("--control", default=defaults.control)
    parser.add_argument("--out", default=defaults.out)
    args = parser.parse_args()
    config = BenchConfig(args.questions, args.max_length, args.student, args.control, args.out)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    subset = out / f"mint_gsm8k_first{config.questions}.jsonl.gz"
    questions = write_subset(config, subset)
    db = out / "real_student.duckdb"
    store = Store(db)
    for summary in ingest(store, [subset], DATASET, "mint", IngestOptions(progress=False)):
        print(summary.line())
    store.con.close()
    print(f"questions {', '.join(questions)}: scoring under {config.student} and the control {config.control}")
    names = [config.student, config.control]
    run_ids, timing = {}, {}
    for name in names:
        run_ids[name], timing[name] = run_scores(db, name, config.max_length)
    store = Store(db, read_only=True)
    report(names, {name: results(store.con, run_ids[name]) for name in names}, timing)


if __name__ == "__main__":
    main()
