"""Table 2 from the store: rows are eval runs, columns the benchmarks in the paper's order, then the
average; written as Markdown, CSV and LaTeX (booktabs), the best value per column marked (bold) when
several runs sit side by side. `curate eval` writes its own run's table, `curate eval-report` any set.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import queries
from .benchmarks import BENCHMARKS, IN_DOMAIN, MISSING_NOTE, column_order

GRADER_NOTES = {"math": "math-verify exact match", "qa": "normalised exact match"}


@dataclass(frozen=True)
class Cell:
    """One benchmark of one run."""

    pass_at_1: float
    n: int
    grader: str


@dataclass
class Row:
    """One eval run: its label and its benchmarks."""

    eval_run: str
    name: str
    description: str
    cells: dict[str, Cell] = field(default_factory=dict)

    @property
    def average(self) -> float:
        """Mean pass@1 over the run's benchmarks (each weighs the same, as in Table 2)."""
        return sum(c.pass_at_1 for c in self.cells.values()) / len(self.cells)


def load_rows(con, runs: Sequence[str] = ()) -> list[Row]:
    """The eval runs named (by id or name; none: every run in the store), in the order given or started."""
    frame = queries.run(con, "eval/table", runs=list(runs))
    if runs and (missing := sorted(set(runs) - set(frame["eval_run"]) - set(frame["name"]))):
        known = queries.frame(con, "SELECT DISTINCT eval_run, name FROM eval_runs ORDER BY 1").rows()
        raise ValueError(
            f"no eval run {', '.join(missing)} in the store (eval runs: "
            f"{', '.join(f'{r} ({n})' for r, n in known) or 'none'})"
        )
    rows: dict[str, Row] = {}
    for r in frame.iter_rows(named=True):
        adapter = f", adapter {r['adapter']} (sha256 {r['adapter_hash'][:12]})" if r["adapter"] else ""
        row = rows.setdefault(
            r["eval_run"],
            Row(
                r["eval_run"],
                r["name"],
                f"model {r['model']}{adapter}; system prompt {r['system_prompt_source']}; {_protocol(r['protocol'])}",
            ),
        )
        row.cells[r["benchmark"]] = Cell(r["pass_at_1"], r["questions"], r["grader"])
    if runs:
        order = {key: i for i, key in enumerate(runs)}
        return sorted(rows.values(), key=lambda row: order.get(row.eval_run, order.get(row.name, 0)))
    return list(rows.values())


def _protocol(text: str) -> str:
    p = json.loads(text)
    candidates = f", self-consistency {p['self_consistency']}" if p["self_consistency"] > 1 else ""
    return (
        f"temperature {p['temperature']:g}, top-p {p['top_p']:g}{candidates}, at most {p['max_steps']} steps "
        f"of {p['max_new_tokens']} tokens, tools {', '.join(p['tools'])}"
        + (f" (search: {p['search']})" if p.get("search") else "")
        + f", seed {p['seed']}, {p['profile']} markers"
    )


def columns(rows: Sequence[Row]) -> list[str]:
    """Every benchmark any row has, in the paper's order."""
    return sorted({b for row in rows for b in row.cells}, key=column_order)


def _values(row: Row, cols: Sequence[str]) -> list[float | None]:
    return [row.cells[c].pass_at_1 if c in row.cells else None for c in cols] + [row.average]


def _best(rows: Sequence[Row], cols: Sequence[str]) -> list[float | None]:
    """Per column (and the average), the best value, or None when there is nothing to compare."""
    if len(rows) < 2:
        return [None] * (len(cols) + 1)
    table = [_values(row, cols) for row in rows]
    return [max((v for v in column if v is not None), default=None) for column in zip(*table)]


def _fmt(value: float | None, best: float | None, bold: tuple[str, str]) -> str:
    if value is None:
        return "–"
    text = f"{value:.1f}"
    return f"{bold[0]}{text}{bold[1]}" if best is not None and round(value, 1) == round(best, 1) else text


def _n_note(rows: Sequence[Row], col: str) -> str:
    ns = sorted({row.cells[col].n for row in rows if col in row.cells})
    return f"{col} {ns[0]}" if len(ns) == 1 else f"{col} {'/'.join(map(str, ns))} (differs between runs)"


def _grader_note(rows: Sequence[Row], col: str) -> str:
    graders = sorted({row.cells[col].grader for row in rows if col in row.cells})
    return f"{col} " + " / ".join(f"{g} ({GRADER_NOTES.get(g, 'LLM judge')})" for g in graders)


def markdown(rows: Sequence[Row]) -> str:
    """Table 2 as Markdown, with what the numbers are under it."""
    cols = columns(rows)
    best = _best(rows, cols)
    lines = ["| Run | " + " | ".join(cols) + " | Average |", "|---|" + "---:|" * (len(cols) + 1)]
    for row in rows:
        cells = [_fmt(v, b, ("**", "**")) for v, b in zip(_values(row, cols), best)]
        lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    partial = [row.name for row in rows if len(row.cells) < len(cols)]
    lines += [
        "",
        "pass@1 (%) at the protocol below; Average = the mean over a run's own benchmarks"
        + (f" (runs without every column: {', '.join(partial)})" if partial else "")
        + ("; bold: the best per column (every tied value)" if len(rows) > 1 else "")
        + ".",
        (
            f"In-domain (the paper's training sets): {', '.join(c for c in IN_DOMAIN if c in cols) or 'none'}; "
            "its other benchmarks out-of-domain. "
            if any(c in BENCHMARKS for c in cols)
            else ""
        )
        + f"{MISSING_NOTE}.",
        "Questions: " + "; ".join(_n_note(rows, c) for c in cols) + ".",
        "Graders: " + "; ".join(_grader_note(rows, c) for c in cols) + ".",
        *(f"- {row.name} = {row.eval_run}: {row.description}" for row in rows),
    ]
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[Row]) -> str:
    """Table 2 as CSV: run, eval_run, one pass@1 column per benchmark, average (no marking)."""
    cols = columns(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run", "eval_run", *cols, "average"])
    for row in rows:
        writer.writerow([row.name, row.eval_run, *("" if v is None else f"{v:.4f}" for v in _values(row, cols))])
    return out.getvalue()


def _tex(text: str) -> str:
    for char in "\\&%$#_{}":
        text = text.replace(char, "\\" + char if char != "\\" else r"\textbackslash{}")
    return text


def latex(rows: Sequence[Row]) -> str:
    """Table 2 as a LaTeX booktabs tabular."""
    cols = columns(rows)
    best = _best(rows, cols)
    lines = [
        r"\begin{tabular}{l" + "r" * (len(cols) + 1) + "}",
        r"\toprule",
        "Run & " + " & ".join(_tex(c) for c in cols) + r" & Average \\",
        r"\midrule",
    ]
    for row in rows:
        cells = [_fmt(v, b, (r"\textbf{", "}")) for v, b in zip(_values(row, cols), best)]
        lines.append(_tex(row.name) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_tables(rows: Sequence[Row], out: Path) -> str:
    """Write table.md, table.csv and table.tex into `out`; the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows)
    (out / "table.md").write_text(text, encoding="utf-8")
    (out / "table.csv").write_text(csv_text(rows), encoding="utf-8")
    (out / "table.tex").write_text(latex(rows), encoding="utf-8")
    return text
