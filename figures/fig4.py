"""Fig 4: Delta(HARD - EASY) of accuracy and of tool calls, data sets x {global, per question}.

Diverging colours centred at 0 (blue: HARD above EASY, red: below), values written in the cells.

Run: python -m figures.fig4 --db curate.duckdb --run RUN --out figures_out [--rule quantile|rank]
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from curate import analysis

from .common import SCOPE_TITLES, STYLE, FigureData, save

METRICS = {
    "acc": ("accuracy", "percentage points", "{:+.1f}"),
    "tool_calls": ("tool calls", "per trajectory", "{:+.2f}"),
}


def _matrix(deltas: pl.DataFrame, datasets: list[str], metric: str) -> np.ndarray:
    cells = {
        (row["dataset"], row["scope"]): row["delta"]
        for row in deltas.filter(
            (pl.col("metric") == metric) & (pl.col("teacher_model") == analysis.ALL_MODELS)
        ).iter_rows(named=True)
    }
    return np.array(
        [[np.nan if cells.get((d, s)) is None else cells[(d, s)] for s in analysis.SCOPES] for d in datasets],
        dtype=float,
    )


def _heatmap(fig: plt.Figure, ax: plt.Axes, values: np.ndarray, datasets: list[str], metric: str) -> None:
    title, unit, text = METRICS[metric]
    finite = np.abs(values[np.isfinite(values)])
    # symmetric limits put 0 at the centre of the diverging map
    limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    image = ax.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        label = "n/a" if np.isnan(value) else text.format(value)
        dark = np.isfinite(value) and abs(value) > 0.6 * limit
        ax.text(j, i, label, ha="center", va="center", fontsize=10, color="white" if dark else "black")
    ax.set_xticks(range(len(analysis.SCOPES)), [SCOPE_TITLES[s] for s in analysis.SCOPES])
    ax.set_yticks(range(len(datasets)), datasets)
    ax.set_title(f"Δ {title} (HARD − EASY)")
    bar = fig.colorbar(image, ax=ax, shrink=0.9)
    bar.set_label(f"Δ {title} ({unit})")


def draw(data: FigureData) -> plt.Figure:
    """Two heatmaps side by side: accuracy and tool calls."""
    datasets = data.datasets
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(METRICS), figsize=(10, 1.0 + 0.55 * len(datasets) + 0.9))
        for ax, metric in zip(axes, METRICS):
            _heatmap(fig, ax, _matrix(data.deltas, datasets, metric), datasets, metric)
        fig.suptitle(f"NLL tertiles, {data.rule} rule: how the HARD third differs from the EASY third")
        fig.tight_layout()
    return fig


def write(data: FigureData, out: Path) -> list[Path]:
    """Write fig4.png and fig4.pdf into out."""
    return save(draw(data), out, "fig4")


if __name__ == "__main__":
    from curate.cli.figures import script_main

    script_main(write, __doc__)
