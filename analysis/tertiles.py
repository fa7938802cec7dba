"""Run the NLL tertile analyses of sql/analysis/ for a store and scoring run; return Polars frames."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from curate import queries

RULES = ("quantile", "rank")
# quantile is the default because it is the paper's rule: value thresholds with ties to the lower
# bucket give its unequal per-question counts, while on a global pool of distinct NLLs it splits
# into equal thirds like the rank rule (see sql/analysis/macros.sql).
DEFAULT_RULE = "quantile"
SCOPES = {"global": "G", "per_question": "PQ"}
BUCKETS = ("EASY", "MEDIUM", "HARD")
# Row label in the paper-shaped tables -> column of bucket_stats.sql.
TABLE_METRICS = {
    "N_traj": "n_traj",
    "N_q": "n_q",
    "mean_nll": "mean_nll",
    "traj_chars": "traj_chars",
    "tool_calls": "tool_calls",
    "acc": "acc",
    "q_words": "q_words",
}
CONFOUND_METRICS = {"tokens": "tokens", "repetition": "repetition"}
TABLE_COLUMNS = [f"{tag}-{b[0]}" for tag in SCOPES.values() for b in BUCKETS]
ALL_MODELS = "(all)"


@dataclass(frozen=True)
class AnalysisConfig:
    """What to analyse: one scoring run, one data set or all, one bucketing rule, grouped or not."""

    run_id: str
    dataset: str | None = None
    rule: str = DEFAULT_RULE
    by_model: bool = False

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown tertile rule {self.rule!r} (known: {', '.join(RULES)})")

    def params(self) -> dict:
        return {"run_id": self.run_id, "dataset": self.dataset, "rule": self.rule, "by_model": self.by_model}


@dataclass(frozen=True)
class Analysis:
    """The tables of one analysis: per-bucket statistics, HARD - EASY deltas, Spearman, per model."""

    config: AnalysisConfig
    stats: pl.DataFrame
    deltas: pl.DataFrame
    spearman: pl.DataFrame
    models: pl.DataFrame


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Load the analysis macros (temporary, so a read-only store works too) onto the connection."""
    con.execute(queries.sql_text("analysis/macros")).fetchall()


def refresh_repetition(con: duckdb.DuckDBPyConnection) -> int:
    """Cache the repetition measure of trajectories that have none yet; returns how many were added."""
    return con.execute(queries.sql_text("analysis/repetition")).fetchall()[0][0]


def _run(con: duckdb.DuckDBPyConnection, name: str, params: dict) -> pl.DataFrame:
    prepare(con)
    return queries.run(con, f"analysis/{name}", **params)


def buckets(con: duckdb.DuckDBPyConnection, config: AnalysisConfig) -> pl.DataFrame:
    """Every scored trajectory with its bucket, once per scope."""
    return _run(con, "buckets", config.params())


def bucket_stats(con: duckdb.DuckDBPyConnection, config: AnalysisConfig) -> pl.DataFrame:
    """Per (dataset, teacher_model, scope, bucket): N_traj, N_q, means, accuracy, confounds."""
    stats = _run(con, "bucket_stats", config.params())
    if stats.is_empty():
        where = f" in data set {config.dataset!r}" if config.dataset else ""
        raise ValueError(f"scoring run {config.run_id!r} has no scored trajectories{where}")
    return stats


def unbucketed(con: duckdb.DuckDBPyConnection, config: AnalysisConfig) -> pl.DataFrame:
    """Per data set: the run's trajectories with no NLL (in no bucket), and how many were truncated."""
    return queries.run(con, "analysis/unbucketed", run_id=config.run_id, dataset=config.dataset)


def deltas(con: duckdb.DuckDBPyConnection, config: AnalysisConfig) -> pl.DataFrame:
    """HARD - EASY of every statistic, per (dataset, teacher_model, scope, metric)."""
    return _run(con, "delta", config.params())


def spearman(con: duckdb.DuckDBPyConnection, config: AnalysisConfig) -> pl.DataFrame:
    """Mean within-question Spearman rho of NLL with correctness, and how many questions it covers."""
    params = config.params()
    del params["rule"]
    return _run(con, "spearman", params)


def model_stats(con: duckdb.DuckDBPyConnection, run_id: str, dataset: str | None = None) -> pl.DataFrame:
    """Per (dataset, teacher model): mean NLL, success rate and the confounds."""
    return _run(con, "model_stats", {"run_id": run_id, "dataset": dataset})


def analyze(con: duckdb.DuckDBPyConnection, config: AnalysisConfig) -> Analysis:
    """Fill the repetition cache, then compute every table of the analysis."""
    refresh_repetition(con)
    return Analysis(
        config=config,
        stats=bucket_stats(con, config),
        deltas=deltas(con, config),
        spearman=spearman(con, config),
        models=model_stats(con, config.run_id, config.dataset),
    )


def paper_table(
    stats: pl.DataFrame, dataset: str, teacher_model: str = ALL_MODELS, metrics: dict[str, str] = TABLE_METRICS
) -> pl.DataFrame:
    """The Tables 7-9 shape for one data set: a row per metric, columns G-E .. PQ-H."""
    group = stats.filter((pl.col("dataset") == dataset) & (pl.col("teacher_model") == teacher_model))
    if group.height != len(SCOPES) * len(BUCKETS):
        raise ValueError(f"no bucket statistics for data set {dataset!r}, teacher model {teacher_model!r}")
    cells = {(row["scope"], row["bucket"]): row for row in group.iter_rows(named=True)}
    columns = {"metric": list(metrics)}
    for scope, tag in SCOPES.items():
        for bucket in BUCKETS:
            row = cells[(scope, bucket)]
            columns[f"{tag}-{bucket[0]}"] = [row[column] for column in metrics.values()]
    return pl.DataFrame(columns, schema={"metric": pl.String, **{c: pl.Float64 for c in TABLE_COLUMNS}})
