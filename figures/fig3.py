"""Fig 3: accuracy per NLL tertile (bars) with the bucket's mean NLL (diamonds), per data set.

Rows are data sets; columns are the two scopes (global, per question) under each bucketing rule.

Run: python -m figures.fig3 --db curate.duckdb --run RUN --out figures_out   (from the repo root)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from curate import analysis

from .common import BUCKET_COLOURS, SCOPE_TITLES, STYLE, FigureData, save

PANELS = [(rule, scope) for rule in analysis.RULES for scope in analysis.SCOPES]


def _panel(ax: plt.Axes, nll_ax: plt.Axes, cells: pl.DataFrame, scope: str) -> None:
    x = range(len(analysis.BUCKETS))
    acc = [v if v is not None else 0.0 for v in cells["acc"]]
    ax.bar(x, acc, width=0.62, color=[BUCKET_COLOURS[b] for b in cells["bucket"]], zorder=2)
    # the accuracy goes under the bar, with the count: text inside the plot would meet the NLL markers
    labels = [
        f"{b}\n{a:.1f}%\nn={n}" if n else f"{b}\nempty"
        for b, a, n in zip(cells["bucket"], cells["acc"], cells["n_traj"])
    ]
    ax.set_xticks(list(x), labels)
    ax.set_ylim(0, 105)
    ax.set_yticks(range(0, 101, 20))
    ax.grid(axis="y", color="#dddddd", zorder=0)
    nll = [v if v is not None else float("nan") for v in cells["mean_nll"]]  # an empty bucket has no mean
    nll_ax.plot(list(x), nll, color="black", marker="D", markersize=5, linewidth=1)
    if empty := sum(n == 0 for n in cells["n_traj"]):
        # K <= 2 (every `curate eval` store) leaves per-question buckets empty: say so where it shows
        why = "too few samples per question" if scope == "per_question" else "too few trajectories"
        ax.text(
            0.97,
            0.97,
            f"{empty} of {len(cells)} buckets empty:\n{why}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7.5,
            zorder=3,
        )


def draw(data: FigureData) -> plt.Figure:
    """The figure: a row per data set, a column per (rule, scope)."""
    datasets = data.datasets
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            len(datasets), len(PANELS), figsize=(3.1 * len(PANELS), 2.9 * len(datasets) + 0.9), squeeze=False
        )
        for row, dataset in enumerate(datasets):
            nll_axes = []
            for col, (rule, scope) in enumerate(PANELS):
                stats = data.stats[rule]
                cells = stats.filter(
                    (pl.col("dataset") == dataset)
                    & (pl.col("teacher_model") == analysis.ALL_MODELS)
                    & (pl.col("scope") == scope)
                ).sort("bucket_idx")
                ax = axes[row][col]
                nll_ax = ax.twinx()
                _panel(ax, nll_ax, cells, scope)
                nll_axes.append(nll_ax)
                ax.set_title(f"{dataset}: {SCOPE_TITLES[scope]}, {rule} rule")
                if col == 0:
                    ax.set_ylabel("accuracy (%)")
                else:
                    ax.tick_params(labelleft=False)
                if col == len(PANELS) - 1:
                    nll_ax.set_ylabel("mean NLL (nats/token)")
                else:
                    nll_ax.tick_params(labelright=False)
            # one NLL scale per data set so that the panels of a row compare directly
            nll_values = [v for ax in nll_axes for line in ax.get_lines() for v in line.get_ydata() if v == v]
            low, high = (min(nll_values), max(nll_values)) if nll_values else (0.0, 1.0)
            pad = 0.15 * (high - low) if high > low else 0.5
            for nll_ax in nll_axes:
                nll_ax.set_ylim(low - pad, high + pad)
        handles: list[Artist] = [Patch(color=c, label=f"accuracy, {b}") for b, c in BUCKET_COLOURS.items()]
        handles.append(Line2D([], [], color="black", marker="D", markersize=5, label="mean NLL (right axis)"))
        fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    return fig


def write(data: FigureData, out: Path) -> list[Path]:
    """Write fig3.png and fig3.pdf into out."""
    return save(draw(data), out, "fig3")


if __name__ == "__main__":
    from curate.cli.figures import script_main

    script_main(write, __doc__)
