"""`curate score --ray` on this machine: 1 worker against 2 side by side, and the driver's own limits.

Scaling: a local Ray cluster of two nodes, one CPU each, scores the same store (`curate synth` MATH
runs, ingested) under the student with `--workers 1` and then `--workers 2`, each into a fresh copy
of the store; speed-up = the first's wall seconds over the second's, efficiency = speed-up / 2.
Both runs write the same NLLs (checked).

The driver: every shard's chats leave the driver and every part's rows come back to it, which
only the driver writes. Measured on a larger synthetic store (--trajectories): reading and
serialising the chats (what `curate score --ray` sends, in trajectories/s and MB/s), and taking
parts in (turn rows/s: parts of random NLLs for every turn of every trajectory, taken in by
`curate.score.take_in` as a run's last step does).

Run: python -m bench.ray_scale [--questions 4] [--k 4] [--student smollm2] [--trajectories 20000]
"""

from __future__ import annotations

import argparse
import pickle
import random
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl

from curate.cli import main as curate


def synthetic_store(folder: Path, questions: int, k: int) -> Path:
    runs, db = folder / "runs.jsonl", folder / "store.duckdb"
    assert curate(["synth", "--questions", str(questions), "--k", str(k), "--out", str(runs), "--source", "math"]) == 0
    assert curate(["ingest", "--db", str(db), "--dataset", "synth", "--quiet", str(runs)]) == 0
    return db


def scaling(folder: Path, db: Path, student: str) -> dict[int, float]:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    seconds, turns = {}, {}
    try:
        for workers in (1, 2):
            copy = folder / f"w{workers}.duckdb"
            shutil.copy(db, copy)
            start = time.perf_counter()
            args = ["score", "--db", str(copy), "--student", student, "--no-progress", "--part-size", "4"]
            assert curate([*args, "--ray", cluster.address, "--workers", str(workers)]) == 0
            seconds[workers] = time.perf_counter() - start
            with duckdb.connect(str(copy), read_only=True) as con:
                turns[workers] = con.execute(
                    "SELECT trajectory_id, turn, nll_sum FROM turn_scores ORDER BY 1, 2"
                ).fetchall()
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
    assert turns[1] == turns[2], "1 and 2 workers scored different NLLs"
    return seconds


def driver_limits(folder: Path, trajectories: int) -> dict[str, float]:
    from curate.render import stored_chats
    from curate.score import ScoreConfig, parts_dir, take_in
    from curate.score.blocks import PART_SCHEMA, write_part
    from curate.store import Store

    db = synthetic_store(folder, trajectories // 4, 4)
    with Store(db, read_only=True) as store:
        ids = store.sql("SELECT trajectory_id FROM trajectories ORDER BY 1")["trajectory_id"].to_list()
        turns = dict(store.sql("SELECT trajectory_id, assistant_turns FROM trajectories").iter_rows())
        start, sent = time.perf_counter(), 0
        for i in range(0, len(ids), 256):
            sent += len(pickle.dumps(stored_chats(store.con, ids[i : i + 256])))
        read = time.perf_counter() - start
    run_id = "bench-take-in"
    run_dir = parts_dir(db, run_id)
    run_dir.mkdir(parents=True)
    rng = random.Random(0)
    rows = 0
    for i in range(0, len(ids), 256):
        part = [
            {
                "trajectory_id": t,
                "turn": m,
                "tokens": 50,
                "nll_sum": rng.random() * 50,
                "nll_mean": rng.random(),
                "traj_tokens": 50 * turns[t],
                "truncated": False,
                "fallback": None,
                "sequence_hash": t,
            }
            for t in ids[i : i + 256]
            for m in range(turns[t])
        ]
        write_part(run_dir, "bench", pl.DataFrame(part, schema=PART_SCHEMA))
        rows += len(part)
    manifest = {
        "run_id": run_id,
        "student": "bench",
        "weights_hash": "-",
        "tokenizer_hash": "-",
        "backend": "bench",
        "dtype": "float32",
        "max_length": 4096,
        "single_pass": True,
        "code_version": "-",
        "config": {},
        "started_at": "2026-01-01T00:00:00",
    }
    start = time.perf_counter()
    take_in(ScoreConfig(db=str(db), student="bench", progress=False), manifest)
    took = time.perf_counter() - start
    return {"trajectories": len(ids), "read_s": read, "mb": sent / 2**20, "rows": rows, "take_in_s": took}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--student", default="smollm2")
    parser.add_argument("--trajectories", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "scale").mkdir()
        seconds = scaling(folder, synthetic_store(folder / "scale", args.questions, args.k), args.student)
        (folder / "driver").mkdir()
        driver = driver_limits(folder / "driver", args.trajectories)
    speedup = seconds[1] / seconds[2]
    print(f"{args.questions * args.k} trajectories under {args.student}, local Ray cluster of 2 nodes x 1 CPU")
    print(f"  1 worker : {seconds[1]:7.1f} s")
    print(f"  2 workers: {seconds[2]:7.1f} s   speed-up {speedup:.2f}x, efficiency {speedup / 2:.0%} (same NLLs)")
    print(f"driver, {driver['trajectories']:,} trajectories:")
    print(
        f"  chats read and serialised: {driver['trajectories'] / driver['read_s']:,.0f} trajectories/s "
        f"({driver['mb'] / driver['read_s']:.1f} MB/s, {driver['mb'] / driver['trajectories'] * 1024:.1f} KB each)"
    )
    print(
        f"  parts taken in: {driver['rows'] / driver['take_in_s']:,.0f} turn rows/s "
        f"({driver['rows']:,} rows in {driver['take_in_s']:.1f} s)"
    )


if __name__ == "__main__":
    main()
