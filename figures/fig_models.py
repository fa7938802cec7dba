"""Per teacher model: mean student NLL against the model's success rate, one panel per data set.

When the points line up, NLL tracks the teacher (its style, its length, its repetitions) rather than
how learnable a single trajectory is; the title gives the across-model Spearman rho.

Run: python -m figures.fig_models --db curate.duckdb --run RUN --out figures_out
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl
from matplotlib.transforms import Bbox

from .common import STYLE, FigureData, save

LABELLED = 3  # models named at each end of the NLL range; more would overlap


def model_rho(models: pl.DataFrame) -> float | None:
    """Spearman rho (average ranks) of mean NLL vs success rate across models; None if undefined."""
    if models.height < 2:
        return None
    value = models.select(pl.corr(pl.col("mean_nll").rank(), pl.col("acc").rank())).item()
    return None if value is None or value != value else value


def _label(ax: plt.Axes, models: pl.DataFrame) -> None:
    """Name the models at both ends of the NLL range, skipping any name that would overlap another."""
    ordered = models.sort("mean_nll", "teacher_model")
    ends = ordered.head(LABELLED).vstack(ordered.tail(LABELLED)) if ordered.height > 2 * LABELLED else ordered
    points = ax.transData.transform(models.select("acc", "mean_nll").to_numpy())
    placed: list[Bbox] = []
    for row in ends.unique("teacher_model", maintain_order=True).iter_rows(named=True):
        for dx, align in ((6, "left"), (-6, "right")):
            label = ax.annotate(
                row["teacher_model"],
                (row["acc"], row["mean_nll"]),
                xytext=(dx, 0),
                textcoords="offset points",
                ha=align,
                va="center",
                fontsize=6.5,
                color="#333333",
            )
            box = label.get_window_extent()  # on the figure's own renderer
            # a label may cover neither another label nor a point (a marker is ~3 px in radius)
            hits = box.expanded(1, 1).padded(3).count_contains(points)
            inside = ax.bbox.contains(box.x0, box.y0) and ax.bbox.contains(box.x1, box.y1)
            if inside and not hits and not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
            label.remove()


def _panel(ax: plt.Axes, models: pl.DataFrame, dataset: str) -> None:
    ax.scatter(models["acc"], models["mean_nll"], s=22, color="#3b6ea8", alpha=0.8, zorder=2)
    ax.set_xlim(-5, 105)
    rho = model_rho(models)
    rho_text = "n/a" if rho is None else f"{rho:+.2f}"
    noun = "teacher model" if models.height == 1 else "teacher models"
    ax.set_title(f"{dataset}: {models.height} {noun}, Spearman ρ = {rho_text}")
    ax.set_xlabel("success rate of the teacher model (%)")
    ax.set_ylabel("mean NLL of its trajectories (nats/token)")
    ax.grid(color="#e5e5e5", zorder=0)


def draw(data: FigureData) -> plt.Figure:
    """One scatter panel per data set."""
    datasets = data.datasets
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(datasets), figsize=(5.6 * len(datasets), 4.4), squeeze=False)
        for ax, dataset in zip(axes[0], datasets):
            _panel(ax, data.models.filter(pl.col("dataset") == dataset), dataset)
        fig.tight_layout()
        # labels are placed last, in final axes coordinates, so that overlap checks hold
        for ax, dataset in zip(axes[0], datasets):
            _label(ax, data.models.filter(pl.col("dataset") == dataset))
    return fig


def write(data: FigureData, out: Path) -> list[Path]:
    """Write fig_models.png and fig_models.pdf into out."""
    return save(draw(data), out, "fig_models")


if __name__ == "__main__":
    from curate.cli.figures import script_main

    script_main(write, __doc__)
