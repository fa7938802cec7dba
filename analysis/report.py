"""Format analysis frames as text: fixed number formats per statistic, Markdown tables.

One set of formats serves the terminal (`curate analyze`), the Markdown and LaTeX tables and the
CSV files, so every artefact shows the same numbers; fixed decimals also make the files
byte-identical across runs (the last bits of a parallel float sum may differ, the rounding not).
"""

from __future__ import annotations

import math

import polars as pl

from .tertiles import ALL_MODELS, CONFOUND_METRICS, TABLE_METRICS, paper_table

# Decimals shown per statistic (by stat column and by table row label); CSV files get CSV_DECIMALS.
DECIMALS = {
    "n_traj": 0,
    "n_q": 0,
    "questions": 0,
    "mixed_q": 0,
    "rho_q": 0,
    "mean_nll": 3,
    "traj_chars": 0,
    "tool_calls": 2,
    "acc": 1,
    "q_words": 1,
    "tokens": 0,
    "repetition": 3,
    "mean_rho": 3,
    "easy": 3,
    "hard": 3,
    "delta": 3,
}
DECIMALS.update({label: DECIMALS[column] for label, column in {**TABLE_METRICS, **CONFOUND_METRICS}.items()})
COUNTS = {"n_traj", "n_q", "questions", "mixed_q", "rho_q", "N_traj", "N_q"}
CSV_DECIMALS = 6
MISSING = "-"


def fmt(value: object, stat: str, csv: bool = False) -> str:
    """One number as text: counts as integers, other statistics with their fixed decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "" if csv else MISSING
    if not isinstance(value, (int, float)):
        return str(value)
    if stat in COUNTS:
        return str(int(value))
    decimals = CSV_DECIMALS if csv else DECIMALS.get(stat, 3)
    text = f"{value:.{decimals}f}"
    # "-0.000" and "0.000" are the same number; print it one way
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def table_cells(table: pl.DataFrame, csv: bool = False) -> list[list[str]]:
    """Rows of a frame with a `metric` column as text, each row formatted as its metric."""
    return [[row[0]] + [fmt(v, row[0], csv) for v in row[1:]] for row in table.iter_rows()]


def frame_cells(frame: pl.DataFrame, csv: bool = False) -> list[list[str]]:
    """Rows of a frame as text, each column formatted as the statistic it is named after."""
    return [[fmt(v, c, csv) for v, c in zip(row, frame.columns)] for row in frame.iter_rows()]


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table: text columns left-aligned, numbers right-aligned."""
    numeric = [bool(rows) and all(_is_number(r[i]) for r in rows) for i in range(len(header))]
    rule = ["---:" if n else "---" for n in numeric]
    lines = [header, rule] + rows
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines) + "\n"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == MISSING
    return True


def frame_markdown(frame: pl.DataFrame) -> str:
    """A frame as a Markdown table with the project's number formats."""
    return markdown(frame.columns, frame_cells(frame))


def delta_wide(deltas: pl.DataFrame) -> pl.DataFrame:
    """HARD - EASY with one column per statistic: a row per (dataset, teacher_model, scope)."""
    order = list(dict.fromkeys(deltas["metric"]))
    return deltas.pivot(on="metric", index=["dataset", "teacher_model", "scope"], values="delta").select(
        "dataset", "teacher_model", "scope", *order
    )


def analysis_text(
    stats: pl.DataFrame, deltas: pl.DataFrame, spearman: pl.DataFrame, models: pl.DataFrame, rule: str, by_model: bool
) -> str:
    """Everything `curate analyze` prints, as Markdown sections."""
    parts = []
    if by_model:
        parts.append(f"## Buckets per teacher model (rule: {rule})\n")
        parts.append(frame_markdown(stats.drop("bucket_idx")))
    else:
        for dataset in stats["dataset"].unique(maintain_order=True):
            table = paper_table(stats, dataset, ALL_MODELS, {**TABLE_METRICS, **CONFOUND_METRICS})
            parts.append(f"## {dataset} (rule: {rule})\n")
            parts.append(markdown(table.columns, table_cells(table)))
    parts.append("## Delta (HARD - EASY); acc in percentage points\n")
    parts.append(frame_markdown(delta_wide(deltas)))
    parts.append("## Within-question Spearman rho of NLL with correctness (> 0: higher NLL, more often correct)\n")
    parts.append(frame_markdown(spearman))
    if by_model:
        parts.append("## Teacher models: mean NLL and success rate (acc %)\n")
        parts.append(frame_markdown(models))
    return "\n".join(parts)
