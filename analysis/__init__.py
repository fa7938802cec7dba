"""NLL tertile analyses over a store (installed as curate.analysis)."""

from .tertiles import (
    ALL_MODELS,
    BUCKETS,
    CONFOUND_METRICS,
    DEFAULT_RULE,
    RULES,
    SCOPES,
    TABLE_COLUMNS,
    TABLE_METRICS,
    Analysis,
    AnalysisConfig,
    analyze,
    bucket_stats,
    buckets,
    deltas,
    model_stats,
    paper_table,
    prepare,
    refresh_repetition,
    spearman,
    unbucketed,
)

__all__ = [
    "ALL_MODELS", "BUCKETS", "CONFOUND_METRICS", "DEFAULT_RULE", "RULES", "SCOPES", "TABLE_COLUMNS",
    "TABLE_METRICS", "Analysis", "AnalysisConfig", "analyze", "bucket_stats", "buckets", "deltas",
    "model_stats", "paper_table", "prepare", "refresh_repetition", "spearman",
    "unbucketed",
]
