"""Every table and figure of one scoring run, written into one folder with index.md.

Run: python -m figures --db curate.duckdb --run RUN --out figures_out   (from the repo root)
 or: curate figures --db curate.duckdb --run RUN --out figures_out
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from curate import analysis

from . import fig3, fig4, fig_models, index, tables
from .common import FigureData, collect

# Order matters only for index.md, which links the files the others write.
SCRIPTS = (tables, fig3, fig4, fig_models, index)


@dataclass(frozen=True)
class FiguresConfig:
    """What `curate figures` draws; written beside the outputs as figures_config.json."""

    db: str
    run_id: str
    out: str
    rule: str = analysis.DEFAULT_RULE


@dataclass(frozen=True)
class FiguresResult:
    """Where index.md is, every file written, the seconds spent in SQL and in plotting, and the
    data the figures show (the report's HTML tables are made from it)."""

    index: Path
    files: list[Path]
    sql_s: float
    plot_s: float
    data: FigureData

    @property
    def notes(self) -> list[str]:
        """What the figures cannot show for want of samples, one line each."""
        return self.data.notes()


def render(data: FigureData, out: Path) -> list[Path]:
    """Run every script on collected data; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    return [path for script in SCRIPTS for path in script.write(data, out)]


def write_figures(con: duckdb.DuckDBPyConnection, config: FiguresConfig) -> FiguresResult:
    """Fill the repetition cache, query once, write every artefact and the resolved config."""
    start = time.perf_counter()
    analysis.refresh_repetition(con)
    data = collect(con, config.run_id, config.rule)
    sql_done = time.perf_counter()
    out = Path(config.out)
    files = render(data, out)
    (out / "figures_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    return FiguresResult(
        out / "index.md", files + [out / "figures_config.json"], sql_done - start, time.perf_counter() - sql_done, data
    )


def write_all(
    db: str | Path,
    out: str | Path,
    run_id: str | None = None,
    student: str | None = None,
    rule: str = analysis.DEFAULT_RULE,
) -> Path:
    """Demo hook: every table and figure of a store's scoring run into `out`; returns index.md's path."""
    from curate.runs import resolve_run
    from curate.store import Store

    with Store(db) as store:
        run = resolve_run(store.con, run_id=run_id, student=student)
        return write_figures(store.con, FiguresConfig(str(db), run, str(out), rule)).index
