"""Benchmark: min_nll selection over a synthetic store of >= 1M trajectories (100k questions x K=10,
1-6 scored assistant turns each), in DuckDB (sql/policies/min_nll.sql, as `curate select` runs it)
vs a pandas group-by baseline computing the same rows from the same tables, in one run.

The store is generated inside DuckDB from range() and seeded random() (no Python loops). Both
sides start from tables already in memory of their engine; the pandas side's load time is
reported apart. The two results are checked equal before any time is printed.

Run: python -m bench.select            (defaults: --questions 100000 --k 10 --threads 2 --repeat 3)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from curate.select import SelectConfig, run_policy, select
from curate.store import Store

RUN = "bench-run"


def build(store: Store, questions: int, k: int) -> None:
    """Fill the store: questions, K samples each (about 60% clean), per-turn and per-trajectory scores."""
    con = store.con
    con.execute("SELECT setseed(0.42)").fetchall()
    with store.transaction():
        con.execute(
            "INSERT INTO questions SELECT 'bench', 'q' || lpad(CAST(i AS VARCHAR), 7, '0'), 'Question ' || i, NULL,"
            " 2, NULL FROM range($n) q(i)",
            {"n": questions},
        )
        con.execute(
            """
            INSERT INTO trajectories (trajectory_id, dataset, question_id, sample_idx, teacher_model, correct,
                                      generated_answer, parse_error, max_steps, exec_error, clean, assistant_turns,
                                      tool_calls, assistant_chars, profile, content_hash, ingest_id, source_file,
                                      source_line, cost, error)
            SELECT 'q' || lpad(CAST(i // $k AS VARCHAR), 7, '0') || ':' || (i % $k), 'bench',
                   'q' || lpad(CAST(i // $k AS VARCHAR), 7, '0'), CAST(i % $k AS INTEGER), 'teacher',
                   correct, NULL, parse_error, false, false, correct AND NOT parse_error,
                   turns, turns, 400 * turns, 'smolagents', md5(CAST(i AS VARCHAR)), 0, 'bench', CAST(i AS INTEGER),
                   NULL, NULL
            FROM (SELECT i, random() < 0.65 AS correct, random() < 0.08 AS parse_error,
                         1 + CAST(floor(random() * 6) AS INTEGER) AS turns
                  FROM range($n * $k) t(i))""",
            {"n": questions, "k": k},
        )
        con.execute(
            "INSERT INTO scoring_runs VALUES ($r, 'bench-student', 'w', 't', 'transformers', 'float32', 10240, true,"
            " 'bench', '{}', now(), now(), $n, 0)",
            {"r": RUN, "n": questions * k},
        )
        con.execute(
            """
            INSERT INTO turn_scores
            SELECT $r, trajectory_id, turn, 50, 50 * nll, nll
            FROM (SELECT trajectory_id, unnest(range(assistant_turns)) AS turn,
                         -- quarter steps: equal NLLs (ties) are common, and sums are exact in
                         -- binary, so both engines' averages agree to the last bit
                         floor(random() * 16) / 4 AS nll
                  FROM trajectories)""",
            {"r": RUN},
        )
        con.execute(
            "INSERT INTO trajectory_scores (run_id, trajectory_id, tokens, truncated) "
            "SELECT $r, trajectory_id, 50 * assistant_turns, false FROM trajectories",
            {"r": RUN},
        )
    # as a store is after `curate ingest` and `curate score`: written out and compressed
    con.execute("CHECKPOINT")


def pandas_min_nll(turns: pd.DataFrame, traj: pd.DataFrame, asked: pd.DataFrame, k: int) -> pd.DataFrame:
    """The same rule with pandas group-bys: macro-average NLL, clean and within K, lowest NLL then sample."""
    nll = turns.groupby("trajectory_id", sort=False)["nll_mean"].mean().rename("nll")
    pool = traj[traj["clean"] & (traj["sample_idx"] < k)].join(nll, on="trajectory_id", how="inner")
    pool = pool.sort_values(["dataset", "question_id", "nll", "sample_idx"])
    keys = ["dataset", "question_id"]
    chosen = pool.drop_duplicates(keys).assign(rank=1)
    chosen["candidates"] = (
        chosen[keys].merge(pool.groupby(keys).size().rename("candidates"), on=keys)["candidates"].values
    )
    per_q = (
        traj.assign(clean_in_k=traj["clean"] & (traj["sample_idx"] < k))
        .groupby(keys)
        .agg(clean=("clean", "sum"), clean_in_k=("clean_in_k", "sum"))
    )
    out = asked.merge(chosen[keys + ["trajectory_id", "nll", "rank", "candidates"]], on=keys, how="left")
    out = out.join(per_q, on=keys)
    out["reason"] = "lowest NLL"
    out.loc[out["trajectory_id"].isna() & (out["clean"] == 0), "reason"] = "no clean trajectory"
    out.loc[out["trajectory_id"].isna() & (out["clean"] > 0), "reason"] = "no clean trajectory with sample_idx < k"
    out["candidates"] = out["candidates"].fillna(0).astype(int)
    return out.drop(columns=["clean", "clean_in_k"]).sort_values(keys, ignore_index=True)


def best_of(repeat: int, fn):
    """(wall s, CPU s) of the fastest of `repeat` calls, and the last result. CPU seconds count
    every thread of this process, so on a shared machine they show what wall time hides."""
    times = []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", type=Path, help="keep the store here (default: a temporary file)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.db or Path(tmp) / "bench.duckdb")
        store.con.execute(f"SET threads = {int(args.threads)}")
        start = time.perf_counter()
        build(store, args.questions, args.k)
        built = time.perf_counter() - start
        n_traj, n_turns = store.con.execute(
            "SELECT (SELECT count(*) FROM trajectories), (SELECT count(*) FROM turn_scores)"
        ).fetchall()[0]
        print(
            f"store: {args.questions:,} questions, {n_traj:,} trajectories, {n_turns:,} turn scores "
            f"(built in {built:.1f} s, DuckDB threads={args.threads})"
        )

        duck_s, duck = best_of(args.repeat, lambda: run_policy(store.con, "min_nll", RUN, None, args.k))

        start = time.perf_counter()
        turns = store.con.sql(
            "SELECT trajectory_id, nll_mean FROM turn_scores WHERE run_id = $r", params={"r": RUN}
        ).df()
        traj = store.con.sql("SELECT dataset, question_id, trajectory_id, sample_idx, clean FROM trajectories").df()
        asked = store.con.sql("SELECT dataset, question_id FROM questions").df()
        loaded = time.perf_counter() - start
        pandas_s, base = best_of(args.repeat, lambda: pandas_min_nll(turns, traj, asked, args.k))

        got = duck.to_pandas()
        assert got["trajectory_id"].fillna("").tolist() == base["trajectory_id"].fillna("").tolist()
        assert got["candidates"].tolist() == base["candidates"].tolist()
        assert got["reason"].tolist() == base["reason"].tolist()
        assert (got["nll"].fillna(-1) - base["nll"].fillna(-1)).abs().max() < 1e-9

        (stored_s, _), _ = best_of(1, lambda: select(store, SelectConfig(run=RUN, k=args.k, name="bench")))
        chosen = int(duck["trajectory_id"].is_not_null().sum())
        print(
            f"min_nll over {n_traj:,} trajectories -> {chosen:,} chosen of {len(duck):,} questions "
            f"(best of {args.repeat}, same rows on both sides; load average {os.getloadavg()[0]:.1f})"
        )
        print(f"  DuckDB (sql/policies/min_nll.sql)   {duck_s[0]:7.3f} s wall  {duck_s[1]:7.3f} s CPU")
        print(
            f"  pandas group-by baseline            {pandas_s[0]:7.3f} s wall  {pandas_s[1]:7.3f} s CPU"
            f"   (+ {loaded:.2f} s to load the tables)"
        )
        print(
            f"  ratio pandas / DuckDB               {pandas_s[0] / duck_s[0]:7.1f} x wall  "
            f"{pandas_s[1] / duck_s[1]:5.1f} x CPU"
        )
        print(f"  curate select (policy + store + sql/checks audit, once)  {stored_s:.3f} s wall")
        store.close()


if __name__ == "__main__":
    main()
