"""index.md: the tables and figures of one scoring run on one page, each with a one-line caption.

Run after the other scripts (it links their files): python -m figures.index --db curate.duckdb --run RUN --out figures_out
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from curate import analysis
from curate.analysis.report import fmt, markdown, table_cells
from curate.models import is_tiny_random

from .common import TINY_NOTE, FigureData, file_stem
from .fig_models import model_rho

FIGURES = {
    "fig3": "Fig 3. Accuracy per NLL tertile (bars, left axis) and the tertile's mean NLL (diamonds, right axis), "
    "per data set, for the global and per-question split under both bucketing rules.",
    "fig4": "Fig 4. Δ(HARD − EASY) of accuracy (percentage points) and of tool calls per trajectory, "
    "data sets × {global, per-question}; blue: HARD above EASY, red: below.",
    "fig_models": "Per teacher model: mean student NLL against the model's success rate; "
    "when the points line up, NLL tracks the teacher rather than the learnability of a trajectory.",
}
RULE_TEXT = {
    "quantile": "quantile rule: thresholds at the 1/3 and 2/3 NLL quantiles (linear interpolation), "
    "ties to the lower bucket, so buckets can be unequal (the paper's rule)",
    "rank": "rank rule: equal-count thirds by NLL rank, ties broken by sample index",
}


def spearman_line(spearman: pl.DataFrame, dataset: str) -> str:
    """One sentence: the mean within-question Spearman rho of NLL with correctness of a data set."""
    row = spearman.filter((pl.col("dataset") == dataset) & (pl.col("teacher_model") == analysis.ALL_MODELS))
    if row.is_empty() or row["rho_q"][0] == 0:
        return "Within-question Spearman ρ of NLL with correctness: no question has both outcomes and varying NLL."
    r = row.row(0, named=True)
    return (
        f"Within-question Spearman ρ of NLL with correctness: mean {fmt(r['mean_rho'], 'mean_rho')} over "
        f"{r['rho_q']} of {r['questions']} questions (those with both outcomes and varying NLL; "
        "> 0: the higher-NLL trajectories are the correct ones more often)."
    )


def text(data: FigureData) -> str:
    """The Markdown of index.md (no paths, no dates: the same store gives the same page)."""
    stats = data.stats[data.rule]
    lines = [
        "# NLL tertile analyses",
        "",
        f"Scoring run `{data.run_id}`, student `{data.student}`. Tables and Fig 4 use the {RULE_TEXT[data.rule]}.",
        "Regenerate with `curate figures --db DB --run RUN --out DIR`.",
        "",
    ]
    if is_tiny_random(data.student):
        lines += [f"> **Caveat.** This run scores with a tiny random model. {TINY_NOTE}", ""]
    for note in data.notes():
        lines += [f"> **Note.** {note}", ""]
    lines += ["## Tables", ""]
    for dataset in data.datasets:
        stem = file_stem(dataset)
        table = analysis.paper_table(stats, dataset)
        confounds = analysis.paper_table(stats, dataset, metrics=analysis.CONFOUND_METRICS)
        lines += [
            f"### {dataset}",
            "",
            f"Table: bucket statistics of {dataset} (G: global, PQ: per question; E/M/H: EASY/MEDIUM/HARD). "
            f"Files: [CSV](table_{stem}.csv), [LaTeX](table_{stem}.tex).",
            "",
            markdown(table.columns, table_cells(table)),
            "Confounds: supervised tokens and share of repeated word 4-grams per bucket "
            f"([CSV](confounds_{stem}.csv)).",
            "",
            markdown(confounds.columns, table_cells(confounds)),
            spearman_line(data.spearman, dataset),
            "",
        ]
    lines += ["## Figures", ""]
    for stem, caption in FIGURES.items():
        lines += [f"![{stem}]({stem}.png)", "", f"*{caption}* ([PDF]({stem}.pdf))", ""]
    lines += ["## Teacher models", ""]
    for dataset in data.datasets:
        rho = model_rho(data.models.filter(pl.col("dataset") == dataset))
        lines.append(
            f"- {dataset}: Spearman ρ of mean NLL vs success rate across teacher models: {fmt(rho, 'mean_rho')}."
        )
    lines += ["", "Per-model numbers: [models.csv](models.csv).", ""]
    return "\n".join(lines)


def write(data: FigureData, out: Path) -> list[Path]:
    """Write index.md into out."""
    path = out / "index.md"
    path.write_text(text(data))
    return [path]


if __name__ == "__main__":
    from curate.cli.figures import script_main

    script_main(write, __doc__)
