"""Ingest throughput: `curate.ingest` against a straightforward json.loads + row-by-row INSERT baseline.

Synthesises a smolagents-format file (default 200,000 runs, about 1 GB), ingests it whole into a
fresh store, and runs the baseline on the file's first records (--baseline-records), extrapolating
its per-record time; both read the same fields through `curate.ingest.formats.parse`, so the comparison is
the reading and inserting strategy. Prints MB/s, runs/s and the ratio, measured in this one run.

Run: python -m bench.ingest [--runs 200000] [--baseline-records 2000] [--out bench_out/ingest]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from curate.ingest import IngestOptions, formats, ingest
from curate.ingest.synth import SynthConfig, write
from curate.store import Store


def baseline(path: Path, db: Path, records: int) -> tuple[int, int, float, float]:
    """json.loads each line and INSERT each row on its own; returns (records, bytes, seconds, CPU seconds)."""
    store = Store(db)
    con = store.con
    spec, cache = formats.SMOLAGENTS, {}
    read = 0
    started, cpu = time.perf_counter(), time.process_time()
    con.execute("BEGIN TRANSACTION")
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if number > records:
                break
            read += len(line)
            parsed = formats.parse(json.loads(line), spec, cache)
            con.execute(
                "INSERT INTO questions VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING",
                ["bench", parsed.question_id, parsed.question, parsed.gold, len(parsed.question.split())],
            )
            if parsed.failed:
                con.execute(
                    "INSERT INTO failed_runs VALUES (1, 'bench', ?, ?, ?, ?, ?)",
                    [parsed.question_id, parsed.model, str(path), number, parsed.error],
                )
                continue
            tid = f"b{number}"
            sample = con.execute(
                "SELECT coalesce(max(sample_idx) + 1, 0) FROM trajectories WHERE question_id = ?", [parsed.question_id]
            ).fetchall()[0][0]
            row = {
                "trajectory_id": tid,
                "dataset": "bench",
                "question_id": parsed.question_id,
                "sample_idx": sample,
                **parsed.row,
                "ingest_id": 1,
                "source_file": str(path),
                "source_line": number,
            }
            con.execute(
                f"INSERT INTO trajectories ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
            )
            for position, (role, norm, text) in enumerate(parsed.messages):
                con.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", [tid, position, role, norm, text])
    con.execute("COMMIT")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    store.close()
    return min(records, number), read, seconds, cpu


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
        started, cpu = time.perf_counter(), time.process_time()
        (summary,) = ingest(store, [path], "bench", options=IngestOptions(progress=False))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert summary.records == args.runs and summary.rejects == 0
    fast_mb, fast_runs = size / seconds / 1e6, summary.records / seconds

    n, read, base_seconds, base_cpu = baseline(path, out / "baseline.duckdb", args.baseline_records)
    base_mb, base_runs = read / base_seconds / 1e6, n / base_seconds
    scale = summary.records / n

    print(f"{'':30}{'MB/s':>9}{'runs/s':>9}{'seconds':>9}{'CPU s':>9}{'MB/CPU s':>10}")
    print(
        f"{'curate ingest (whole file)':30}{fast_mb:>9.1f}{fast_runs:>9.0f}{seconds:>9.1f}{cpu:>9.1f}"
        f"{size / cpu / 1e6:>10.1f}"
    )
    print(
        f"{'baseline (json + row INSERT)':30}{base_mb:>9.2f}{base_runs:>9.0f}{base_seconds * scale:>9.0f}"
        f"{base_cpu * scale:>9.0f}{read / base_cpu / 1e6:>10.2f}"
    )
    print(f"ratio (runs/s): {fast_runs / base_runs:.1f}x")
    print(
        f"the baseline ran on the first {n} records ({read / 1e6:.1f} MB, {base_seconds:.1f} s); its "
        "whole-file seconds are extrapolated per record"
    )
    print(f"store: {summary.trajectories} trajectories, {(out / 'ingest.duckdb').stat().st_size / 1e6:.0f} MB on disk")
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
        "(CPU s well under seconds: other work shared the cores)"
    )


if __name__ == "__main__":
    main()
