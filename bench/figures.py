"""Time `curate figures` on a synthetic store of 1M scored trajectories: SQL part vs plotting part.

The store is built inside DuckDB from range() and hash-based pseudo-random numbers (no Python
loops): 3 data sets, 10 samples per question, 40 teacher models of different skill, 1-4 scored
turns per trajectory, a few verbatim duplicate samples (tied NLLs), one short assistant message
per trajectory (for the repetition measure). The repetition cache is filled once, as a separate
timed step (a store fills it once; later runs only add new trajectories).

Run (from the repo root): OMP_NUM_THREADS=2 python -m bench.figures [--trajectories 1000000] [--threads 2] [--out /tmp/bench_figures]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import duckdb

from curate.figures.build import FiguresConfig, write_figures
from curate.store import Store

# u(i, salt): a uniform number in [0, 1) from a hash, the same on every run and thread count
BUILD = """
CREATE TEMP MACRO u(i, salt) AS (hash(i, salt) % 1000000) / 1000000.0;

INSERT INTO questions
SELECT 'synth_' || ['math', 'qa', 'code'][q % 3 + 1], 'q' || q, 'Synthetic question ' || q,
       '42', 5 + (q * 7) % 40, NULL
FROM range($questions) r(q);

CREATE TEMP TABLE draw AS
SELECT i, i // 10 AS q, i % 10 AS sample_idx,
       -- a verbatim repeat of the previous sample: same model, outcome, text and NLL
       CASE WHEN i % 10 > 0 AND u(i, 'dup') < 0.05 THEN i - 1 ELSE i END AS src,
       CAST((hash(i // 10, 'model') + i) % 40 AS INTEGER) AS model
FROM range($n) r(i);

CREATE TEMP TABLE base AS
SELECT d.i, d.q, d.sample_idx, s.model,
       -- weaker models (higher index) fail more often and write lower-NLL, more repetitive text
       u(d.src, 'ok') < 0.85 - s.model / 60.0 AS correct,
       CAST(1 + hash(d.src, 'turns') % 4 AS INTEGER) AS turns,
       d.src
FROM draw d JOIN draw s ON s.i = d.src;

INSERT INTO trajectories
SELECT 't' || i, 'synth_' || ['math', 'qa', 'code'][q % 3 + 1], 'q' || q, sample_idx,
       'model-' || lpad(CAST(model AS VARCHAR), 2, '0'), correct, '42',
       false, false, false, correct, turns, turns - (NOT correct)::INTEGER,
       300 + (hash(src, 'chars') % 3000), 'smolagents', CAST(hash(src, 'content') AS VARCHAR),
       0, 'bench', i + 1, NULL, NULL
FROM base;

INSERT INTO messages
SELECT 't' || i, 0, 'assistant', 'assistant',
       -- weaker models repeat a shorter phrase: more repeated 4-grams
       array_to_string(list_transform(range(30), lambda j: 'w' || (hash(src, j % (8 + (39 - model) // 2)) % 1000)), ' ')
FROM base;

INSERT INTO scoring_runs VALUES ('bench', 'synthetic', 'w', 't', 'transformers', 'float32', 4096, true,
                                 'bench', '{}', TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-01', $n, NULL);

INSERT INTO turn_scores
SELECT 'bench', 't' || i, m, 50, 50 * nll, nll
FROM (
    SELECT i, src, model, m,
           0.4 + (1.0 - model / 50.0) * (0.6 + u(src, 'nll' || m)) + 0.2 * CAST(correct AS INTEGER) AS nll
    FROM base, range(turns) t(m)
);

INSERT INTO trajectory_scores (run_id, trajectory_id, tokens, truncated)
SELECT 'bench', 't' || i, 50 * turns, false FROM base;
"""


def build_store(path: Path, n: int) -> None:
    """A store of n scored trajectories (10 per question), built by SQL alone."""
    with Store(path) as store:
        con = store.con
        for statement in BUILD.split(";\n"):
            if statement.strip():
                params = {k: v for k, v in {"n": n, "questions": n // 10}.items() if f"${k}" in statement}
                con.execute(statement, params).fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="/tmp/bench_figures")
    args = parser.parse_args()

    work = Path(args.out)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "bench.duckdb"

    start = time.perf_counter()
    build_store(db, args.trajectories)
    built = time.perf_counter() - start

    con = duckdb.connect(str(db))
    con.execute(f"SET threads = {int(args.threads)}")
    from curate.analysis import refresh_repetition

    start = time.perf_counter()
    refresh_repetition(con)
    cache = time.perf_counter() - start
    con.close()

    # the timed part: what `curate figures` does on a store whose cache is filled
    with Store(db) as store:
        store.con.execute(f"SET threads = {int(args.threads)}")
        result = write_figures(store.con, FiguresConfig(str(db), "bench", str(work / "figures")))
    total = result.sql_s + result.plot_s

    print(f"store: {args.trajectories:,} trajectories, {args.threads} DuckDB threads")
    print(f"{'step':<38}{'seconds':>9}")
    print(f"{'build store (not part of figures)':<38}{built:>9.1f}")
    print(f"{'repetition cache fill (once per store)':<38}{cache:>9.1f}")
    print(f"{'curate figures: SQL':<38}{result.sql_s:>9.1f}")
    print(f"{'curate figures: plotting + files':<38}{result.plot_s:>9.1f}")
    print(f"{'curate figures: total (target < 30 s)':<38}{total:>9.1f}   {'OK' if total < 30 else 'OVER'}")
    print(f"SQL : plotting = {result.sql_s / result.plot_s:.2f}")
    print(result.index)


if __name__ == "__main__":
    main()
