"""Ingest throughput: `curate.ingest` against a straightforward json.loads + row-by-row INSERT baseline.

Synthesises a smolagents-format file (default 200,000 runs, about 1 GB), ingests it whole into a
fresh store, and runs the baseline on the file's first records (--baseline-records), extrapolating
its per-record time; both read the same fields through `curate.formats.parse`, so the comparison is
the reading and inserting strategy. Prints MB/s, runs/s and the ratio, measured in this one run.

Run: python bench/ingest.py [--runs 200000] [--baseline-records 2000] [--out bench_out/ingest]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from curate import formats
from curate.ingest import IngestOptions, ingest
from curate.store import Store
from curate.synth import SynthConfig, write


def baseline(path: Path, db: Path, records: int) -> tuple[int, int, float]:
    """json.loads each line and INSERT each row on its own; returns (records, bytes, seconds)."""
    store = Store(db)
    con = store.con
    spec, cache = formats.SMOLAGENTS, {}
    read = 0
    started = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if number > records:
                break
            read += len(line)
            parsed = formats.parse(json.loads(line), spec, cache)
            con.execute("INSERT INTO questions VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING",
                        ["bench", parsed.question_id, parsed.question, parsed.gold, len(parsed.question.split())])
            if parsed.failed:
                con.execute("INSERT INTO failed_runs VALUES (1, 'bench', ?, ?, ?, ?, ?)",
                            [parsed.question_id, parsed.model, str(path), number, parsed.error])
                continue
            tid = f"b{number}"
            sample = con.execute("SELECT coalesce(max(sample_idx) + 1, 0) FROM trajectories WHERE question_id = ?",
                                 [parsed.question_id]).fetchall()[0][0]
            row = {"trajectory_id": tid, "dataset": "bench", "question_id": parsed.question_id, "sample_idx": sample,
                   **parsed.row, "ingest_id": 1, "source_file": str(path), "source_line": number}
            con.execute(f"INSERT INTO trajectories ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        list(row.values()))
            for position, (role, norm, text) in enumerate(parsed.messages):
                con.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", [tid, position, role, norm, text])
    con.execute("COMMIT")
    seconds = time.perf_counter() - started
    store.close()
    return min(records, number), read, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200_000, help="synthetic runs in the file")
    parser.add_argument("--baseline-records", type=int, default=2000, help="records the baseline inserts")
    parser.add_argument("--out", default="bench_out/ingest", help="work folder (emptied first)")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    path = out / "runs.jsonl"
    started = time.perf_counter()
    write(SynthConfig(questions=args.runs // 10, k=10, seed=0), path)
    size = path.stat().st_size
    print(f"synthesised {args.runs} runs, {size / 1e6:.0f} MB, in {time.perf_counter() - started:.0f} s")

    with Store(out / "ingest.duckdb") as store:
        started = time.perf_counter()
        (summary,) = ingest(store, [path], "bench", options=IngestOptions(progress=False))
        seconds = time.perf_counter() - started
    assert summary.records == args.runs and summary.rejects == 0
    fast_mb, fast_runs = size / seconds / 1e6, summary.records / seconds

    n, read, base_seconds = baseline(path, out / "baseline.duckdb", args.baseline_records)
    base_mb, base_runs = read / base_seconds / 1e6, n / base_seconds

    print(f"{'':28}{'MB/s':>10}{'runs/s':>12}{'seconds':>12}")
    print(f"{'curate ingest (whole file)':28}{fast_mb:>10.1f}{fast_runs:>12.0f}{seconds:>12.1f}")
    print(f"{'baseline (json + row INSERT)':28}{base_mb:>10.2f}{base_runs:>12.0f}"
          f"{base_seconds / n * summary.records:>12.0f}")
    print(f"ratio (runs/s): {fast_runs / base_runs:.1f}x")
    print(f"the baseline ran on the first {n} records ({read / 1e6:.1f} MB, {base_seconds:.1f} s); its "
          f"whole-file seconds are extrapolated per record")
    print(f"store: {summary.trajectories} trajectories, {(out / 'ingest.duckdb').stat().st_size / 1e6:.0f} MB on disk")


if __name__ == "__main__":
    main()
