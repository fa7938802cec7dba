"""Tables 7-9: per data set, the bucket statistics in columns G-E G-M G-H PQ-E PQ-M PQ-H.

Writes table_<dataset>.csv|md|tex (the paper's seven statistics) and confounds_<dataset>.csv|md
(supervised tokens and repeated 4-grams per bucket), plus models.csv (one row per teacher model).

Run: python -m figures.tables --db curate.duckdb --run RUN --out figures_out [--rule quantile|rank]
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl

from curate import analysis
from curate.analysis.report import frame_cells, markdown, table_cells

from .common import FigureData, file_stem

TEX_LABELS = {
    "N_traj": r"$N_\mathrm{traj}$",
    "N_q": r"$N_\mathrm{q}$",
    "mean_nll": "Mean NLL",
    "traj_chars": r"Traj.\ chars",
    "tool_calls": "Tool calls",
    "acc": r"Acc.\ (\%)",
    "q_words": "Q words",
}


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    """CSV of already formatted cells, newline-terminated (the same bytes on every platform)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    return buffer.getvalue()


def tex_escape(text: str) -> str:
    """Escape the LaTeX specials that data set names can hold."""
    return "".join("\\" + c if c in "&%$#_{}" else c for c in text)


def latex(table: pl.DataFrame, dataset: str, rule: str, run_id: str) -> str:
    """A booktabs table: global and per-question column groups, one row per statistic."""
    scopes = list(analysis.SCOPES)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{NLL tertiles of {tex_escape(dataset)} ({rule} rule, scoring run \texttt{{{tex_escape(run_id)}}}).}}",
        rf"\label{{tab:tertiles-{file_stem(dataset)}}}",
        r"\begin{tabular}{l" + "r" * (len(scopes) * len(analysis.BUCKETS)) + "}",
        r"\toprule",
        " & "
        + " & ".join(rf"\multicolumn{{3}}{{c}}{{{'Global' if s == 'global' else 'Per-question'}}}" for s in scopes)
        + r" \\",
        r"\cmidrule(lr){2-4} \cmidrule(lr){5-7}",
        "Statistic & " + " & ".join(b.capitalize() for _ in scopes for b in analysis.BUCKETS) + r" \\",
        r"\midrule",
    ]
    for cells in table_cells(table):
        lines.append(" & ".join([TEX_LABELS[cells[0]], *cells[1:]]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write(data: FigureData, out: Path) -> list[Path]:
    """Write the per-data-set tables and models.csv into out."""
    stats = data.stats[data.rule]
    written = []
    for dataset in data.datasets:
        stem = file_stem(dataset)
        table = analysis.paper_table(stats, dataset)
        confounds = analysis.paper_table(stats, dataset, metrics=analysis.CONFOUND_METRICS)
        files = {
            f"table_{stem}.csv": csv_text(table.columns, table_cells(table, csv=True)),
            f"table_{stem}.md": markdown(table.columns, table_cells(table)),
            f"table_{stem}.tex": latex(table, dataset, data.rule, data.run_id),
            f"confounds_{stem}.csv": csv_text(confounds.columns, table_cells(confounds, csv=True)),
            f"confounds_{stem}.md": markdown(confounds.columns, table_cells(confounds)),
        }
        for name, text in files.items():
            (out / name).write_text(text)
            written.append(out / name)
    (out / "models.csv").write_text(csv_text(data.models.columns, frame_cells(data.models, csv=True)))
    return written + [out / "models.csv"]


if __name__ == "__main__":
    from curate.cli.figures import script_main

    script_main(write, __doc__)
