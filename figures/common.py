"""What every figure script shares: the data (one SQL pass), the plot style, deterministic saving."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import matplotlib
import matplotlib.pyplot
import polars as pl

from curate import analysis
from curate.queries import frame

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

matplotlib.use("Agg")

# Fixed font, no hash randomness in SVG ids, no timestamps or version strings in the files:
# the same store gives the same bytes.
STYLE: dict[RcKeyType, Any] = {  # Any: rc values are of every type, as matplotlib's own rc_context takes them
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "legend.fontsize": 8.5,
    "svg.hashsalt": "curate",
    "figure.dpi": 100,
    "savefig.dpi": 150,
}
PNG_METADATA = {"Software": None}
PDF_METADATA = {"CreationDate": None, "Creator": None, "Producer": None}
BUCKET_COLOURS = {"EASY": "#4c9a6a", "MEDIUM": "#e0a23b", "HARD": "#c8553d"}
SCOPE_TITLES = {"global": "global", "per_question": "per question"}
TINY_NOTE = (
    "NLL under a tiny randomly initialised student (`curate tiny-model`, the demo's and the tests' "
    "student) says little about learnability: it exercises the pipeline, it does not measure what a "
    "real student finds easy to learn. Read these figures for a scoring run of a real student."
)


@dataclass(frozen=True)
class FigureData:
    """Everything the figures show, from one scoring run: read once, plotted by each script."""

    run_id: str
    student: str
    rule: str
    stats: dict[str, pl.DataFrame]  # rule -> bucket_stats (both scopes, every data set)
    deltas: pl.DataFrame  # HARD - EASY under `rule`
    spearman: pl.DataFrame
    models: pl.DataFrame

    @property
    def datasets(self) -> list[str]:
        return sorted(self.stats[self.rule]["dataset"].unique())

    def notes(self) -> list[str]:
        """One line per data set and scope whose NLL buckets are not all filled (too few samples)."""
        stats = self.stats[self.rule].filter(pl.col("teacher_model") == analysis.ALL_MODELS)
        empty = (
            stats.group_by("dataset", "scope", maintain_order=True)
            .agg((pl.col("n_traj") == 0).sum().alias("empty"), pl.len().alias("buckets"))
            .filter(pl.col("empty") > 0)
            .sort("dataset", "scope")
        )
        return [
            f"{r['dataset']}, {SCOPE_TITLES[r['scope']]}: {empty_text(r['empty'], r['buckets'], r['scope'])}"
            for r in empty.iter_rows(named=True)
        ]


def empty_text(empty: int, buckets: int, scope: str) -> str:
    """Why a panel or table has empty NLL buckets, in words."""
    if scope == "per_question":
        return (
            f"{empty} of {buckets} buckets empty: questions have too few samples (a split within a "
            f"question needs {buckets} or more)"
        )
    return f"{empty} of {buckets} buckets empty: too few trajectories (or tied NLLs) to split"


def collect(con: duckdb.DuckDBPyConnection, run_id: str, rule: str = analysis.DEFAULT_RULE) -> FigureData:
    """Run the analyses the figures need (both rules for Fig 3); the repetition cache must be filled."""
    configs = {r: analysis.AnalysisConfig(run_id, rule=r) for r in analysis.RULES}
    if rule not in configs:
        raise ValueError(f"unknown tertile rule {rule!r} (known: {', '.join(analysis.RULES)})")
    student = frame(con, "SELECT student FROM scoring_runs WHERE run_id = $r", {"r": run_id})
    if student.is_empty():
        raise ValueError(f"no scoring run {run_id!r} in this store")
    return FigureData(
        run_id=run_id,
        student=student.item(),
        rule=rule,
        stats={r: analysis.bucket_stats(con, c) for r, c in configs.items()},
        deltas=analysis.deltas(con, configs[rule]),
        spearman=analysis.spearman(con, configs[rule]),
        models=analysis.model_stats(con, run_id),
    )


def file_stem(dataset: str) -> str:
    """A data set name made safe for a file name (anything but letters, digits, '.', '_', '-' -> '_')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", dataset)


def save(fig: matplotlib.figure.Figure, out: Path, stem: str) -> list[Path]:
    """Write stem.png and stem.pdf without timestamps, close the figure, return the paths."""
    png, pdf = out / f"{stem}.png", out / f"{stem}.pdf"
    with matplotlib.pyplot.rc_context(STYLE):
        fig.savefig(png, metadata=PNG_METADATA)
        fig.savefig(pdf, metadata=PDF_METADATA)
    matplotlib.pyplot.close(fig)
    return [png, pdf]
