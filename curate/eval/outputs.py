"""What `curate eval --out DIR` writes: results.json, predictions.jsonl and Table 2 of the run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..store import Store
from .evaluate import EvalResult
from .tables import load_rows, write_tables

FILES = ("results.json", "predictions.jsonl", "table.md", "table.csv", "table.tex")


def check_out(out: str | Path) -> None:
    """Refuse an --out that is a file, or a folder holding anything but an earlier evaluation's files."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: a file, not a folder")
    if out.is_dir() and (other := sorted(p.name for p in out.iterdir() if p.name not in FILES)):
        raise ValueError(
            f"--out {out}: holds {', '.join(other[:3])}{' ...' if len(other) > 3 else ''}, not an "
            "earlier evaluation's files; give a new or empty folder"
        )


def write_outputs(db: str | Path, result: EvalResult, out: str | Path) -> str:
    """Write the run's files into `out` (replacing an earlier run's); Table 2 as Markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result.results_json(), indent=2) + "\n", encoding="utf-8")
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as f:
        for bench in result.benchmarks:
            for prediction in bench.predictions:
                f.write(json.dumps(prediction) + "\n")
    with Store(db, read_only=True) as store:
        rows = load_rows(store.con, [result.eval_run])
    # The table shows this invocation's benchmarks (the run may hold more from earlier ones).
    names = {b.name for b in result.benchmarks}
    for row in rows:
        row.cells = {k: v for k, v in row.cells.items() if k in names}
    return write_tables(rows, out)


def demo(db: str | Path, out: str | Path, student: str, adapter: str, questions: int = 3) -> str:
    """`curate demo`'s last step: `student` alone and with `adapter` on the first questions of the
    bundled MATH sample (python tool, 2 steps of 32 tokens); Table 2 of both, as Markdown."""
    from importlib import resources

    from .evaluate import EvalConfig, evaluate

    common = EvalConfig(
        model=student,
        benchmarks=str(resources.files("curate") / "assets" / "math_sample.json"),
        limit=questions,
        max_steps=2,
        max_new_tokens=32,
        tools=("python",),
    )
    runs = [
        evaluate(db, replace(common, name=f"{student} (base)"), progress=False),
        evaluate(db, replace(common, adapter=adapter, name=f"{student} + adapter"), progress=False),
    ]
    with Store(db, read_only=True) as store:
        rows = load_rows(store.con, [run.eval_run for run in runs])
    return write_tables(rows, Path(out))
