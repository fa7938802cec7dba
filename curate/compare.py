"""`curate compare`: selections side by side on one store (sql/selection/compare.sql).

An entry is a stored selection (by id) or a policy run on a scoring run without storing it. Per
entry: its questions and choices, the share of its choices that are correct and in each NLL
tertile (the paper's question: does a student-aware score pick what the student finds easy, and
is that correct?), their mean NLL, RSR and IFD, length, tool calls and turns, and per other entry
the questions on which both chose the same trajectory. Policies choose among clean trajectories
as `curate select` does (`pool` clean), or among every scored one (`pool` all): what a score picks
before any grader, so that its correctness says something.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from . import queries
from .runs import resolve_run
from .select import DEFAULT_SEED, load_policy, require_selection, run_policy

POOLS = ("clean", "all")
SCOPES = ("per_question", "global")
RULES = ("quantile", "rank")
ENTRY = {
    "entry": pl.Utf8,
    "position": pl.Int32,
    "policy": pl.Utf8,
    "run_id": pl.Utf8,
    "dataset": pl.Utf8,
    "question_id": pl.Utf8,
    "trajectory_id": pl.Utf8,
}


@dataclass(frozen=True)
class CompareConfig:
    """What to compare: stored selections, and policies run on one scoring run (id, or a student's
    latest) with `curate select`'s data set, K and seed over a pool (clean, or all); the tertiles
    by scope (per_question, global) and rule (quantile, rank)."""

    selections: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()
    run: str | None = None
    student: str | None = None
    dataset: str | None = None
    k: int | None = None
    seed: int = DEFAULT_SEED
    pool: str = "clean"
    scope: str = "per_question"
    rule: str = "quantile"

    def __post_init__(self) -> None:
        for option, value, known in (("--pool", self.pool, POOLS), ("--tertiles", self.scope, SCOPES)):
            if value not in known:
                raise ValueError(f"{option} {value!r}: expected one of {', '.join(known)}")
        if self.rule not in RULES:
            raise ValueError(f"--rule {self.rule!r}: expected one of {', '.join(RULES)}")
        if not self.selections and not self.policies:
            raise ValueError("nothing to compare: name stored selections, or policies with --policy")


def _stored(con: duckdb.DuckDBPyConnection, selection_id: str, position: int) -> pl.DataFrame:
    """A stored selection's rows as entries."""
    row = require_selection(con, selection_id)
    rows = queries.frame(
        con,
        "SELECT dataset, question_id, trajectory_id FROM selection_rows WHERE selection_id = $s",
        {"s": selection_id},
    )
    return rows.select(
        pl.lit(selection_id).alias("entry"),
        pl.lit(position).alias("position"),
        pl.lit(row["policy"]).alias("policy"),
        pl.lit(row["run_id"]).alias("run_id"),
        pl.all(),
    )


def _chosen(con: duckdb.DuckDBPyConnection, config: CompareConfig, run_id: str, start: int) -> list[pl.DataFrame]:
    """The rows each of `config.policies` chooses on run `run_id` and the pool, as entries."""
    con.execute("SET VARIABLE selection_pool = $p", {"p": config.pool})
    try:
        frames = []
        for position, spec in enumerate(config.policies, start):
            policy = load_policy(spec)
            rows = run_policy(con, policy, run_id, config.dataset, config.k, config.seed)
            frames.append(
                rows.select(
                    pl.lit(policy.name if len(Path(spec).parts) == 1 else str(spec)).alias("entry"),
                    pl.lit(position).alias("position"),
                    pl.lit(policy.name).alias("policy"),
                    pl.lit(run_id).alias("run_id"),
                    "dataset",
                    "question_id",
                    "trajectory_id",
                )
            )
    finally:
        con.execute("RESET VARIABLE selection_pool")
    return frames


def compare(con: duckdb.DuckDBPyConnection, config: CompareConfig) -> pl.DataFrame:
    """One row per entry (selections first, then policies, each in the order given), with a
    `same as ENTRY` column per entry."""
    # The scoring run first: a --run or --student that names nothing is the error, whatever else is named.
    run_id = resolve_run(con, config.run, config.student) if config.policies or config.run or config.student else None
    frames = [_stored(con, s, i) for i, s in enumerate(config.selections)]
    frames += _chosen(con, config, run_id, len(frames)) if run_id is not None else []
    entries = pl.concat([f.cast(ENTRY) for f in frames])  # type: ignore[arg-type]
    labels = entries.unique("position").sort("position")["entry"].to_list()
    if len(set(labels)) < len(labels):
        twice = sorted({x for x in labels if labels.count(x) > 1})
        raise ValueError(f"{', '.join(map(repr, twice))} given more than once: name each selection or policy once")
    con.execute(queries.sql_text("analysis/macros")).fetchall()
    con.register("compared", entries.to_arrow())
    try:
        table = queries.run(con, "selection/compare", scope=config.scope, rule=config.rule)
    finally:
        con.unregister("compared")
    same = pl.DataFrame(table["same"].to_list(), schema=[f"same as {x}" for x in labels], orient="row")
    return pl.concat([table.drop("same"), same], how="horizontal")
