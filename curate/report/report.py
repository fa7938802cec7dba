"""`curate report`: one static HTML page about a store and one scoring run, opened from disk.

OUT/index.html (a Jinja2 template) shows the store per data set, the tertile tables and figures of
`curate figures` (written by its scripts into OUT/figures/, tables made from the same data), the
per-model plot, the selections side by side, and the trajectory viewer (curate.report.viewer).
OUT/assets/ holds the style sheet and the viewer's script, OUT/viewer/ one script file per
question the viewer carries. No server: every file is loaded by a relative path.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from curate import analysis, queries

from . import viewer
from .config import ReportConfig

HERE = Path(__file__).parent
FIGURES = ("fig3", "fig4")
CONFIG_NAME = "report_config.json"
DECIMALS = {
    "correct_pct": 1,
    "clean_pct": 1,
    "easy_pct": 1,
    "medium_pct": 1,
    "hard_pct": 1,
    "mean_turns": 2,
    "mean_tool_calls": 2,
    "mean_nll": 3,
    "mean_rsr": 2,
    "mean_ifd": 3,
    "mean_assistant_chars": 0,
}


@dataclass(frozen=True)
class Table:
    """A table as text cells, with which columns are numbers (right-aligned)."""

    header: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)


@dataclass(frozen=True)
class ReportResult:
    """Where the page is, how long each part took, what the viewer carries, whether its tokens are
    shaded, and what the page notes about them and about the figures (too few samples, one line each)."""

    index: Path
    seconds: dict[str, float]
    questions: int
    detailed: int
    shaded: bool
    note: str | None
    figure_notes: tuple[str, ...] = ()


def cell(value: object, column: str = "") -> str:
    """A value as the page shows it: integers whole, other numbers with their column's decimals."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{DECIMALS.get(column, 3)}f}"


def frame_table(frame: pl.DataFrame) -> Table:
    """A frame as a Table, numbers formatted by cell()."""
    numeric = [dtype.is_numeric() for dtype in frame.dtypes]
    rows = [[cell(v, c) for v, c in zip(row, frame.columns)] for row in frame.iter_rows()]
    return Table(frame.columns, rows, numeric)


def paper_table(table: pl.DataFrame) -> Table:
    """A tertile table (a metric column, then buckets) with the figures' own number formats."""
    from curate.analysis.report import table_cells

    return Table(table.columns, table_cells(table), [False] + [True] * (len(table.columns) - 1))


def store_summary(con: duckdb.DuckDBPyConnection) -> tuple[Table, Table]:
    """Per data set counts, correct %, clean %, flags and rejects; and rejects by reason."""
    from curate.stats import TABLE_COLUMNS

    stats = queries.run(con, "stats").select(TABLE_COLUMNS)
    return frame_table(stats), frame_table(queries.run(con, "report/rejects"))


def run_selections(con: duckdb.DuckDBPyConnection, run_id: str, wanted: tuple[str, ...]) -> list[str]:
    """The selections to show: those named (each must exist), else every selection of the run."""
    from curate.select import require_selection, selections

    for name in wanted:
        require_selection(con, name)
    if wanted:
        return list(dict.fromkeys(wanted))
    return selections(con).filter(pl.col("run_id") == run_id).sort("selection_id")["selection_id"].to_list()


def selection_tables(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, Table] | None:
    """The selections' parameters and counts, `curate compare`'s table of them, and their reasons."""
    from curate.compare import CompareConfig, compare
    from curate.select import selections

    if not ids:
        return None
    order = {s: i for i, s in enumerate(ids)}
    listing = selections(con).filter(pl.col("selection_id").is_in(ids))
    listing = listing.sort(pl.col("selection_id").replace_strict(order)).drop("created_at")
    reasons = pl.concat(
        [
            queries.run(con, "selection/reasons", selection_id=s).select(pl.lit(s).alias("selection_id"), pl.all())
            for s in ids
        ]
    )
    return {
        "listing": frame_table(listing),
        "compare": frame_table(compare(con, CompareConfig(selections=tuple(ids)))),
        "reasons": frame_table(reasons),
    }


def viewer_student(
    con: duckdb.DuckDBPyConnection, run_id: str, config: ReportConfig
) -> tuple[viewer.Student | None, str | None]:
    """The run's student (or --model) loaded for token NLLs, or None and why not."""
    from curate.models import resolve_student
    from curate.score import tokenizer_hash

    run = queries.frame(
        con, "SELECT student, dtype, max_length, tokenizer_hash FROM scoring_runs WHERE run_id = $r", {"r": run_id}
    ).row(0, named=True)
    name = config.model or run["student"]
    try:
        path = resolve_student(name)
    except (FileNotFoundError, ValueError) as error:
        return None, (
            f"Token NLLs are not shown: the run's student {name!r} cannot be loaded here ({error}). "
            "Pass --model PATH to shade tokens with a local copy."
        )
    student = viewer.load_student(path, run["dtype"], run["max_length"], config.device)
    if tokenizer_hash(student.tokenizer) != run["tokenizer_hash"]:
        return student, (
            f"The tokenizer of {name} differs from the one the run scored with: token NLLs and "
            "turn means may differ from the stored scores."
        )
    return student, None


def prepare_out(out: Path) -> None:
    """Refuse a folder that holds anything but an earlier report; clear an earlier report's viewer files."""
    if out.exists() and not (out.is_dir() and ((out / CONFIG_NAME).is_file() or not any(out.iterdir()))):
        raise ValueError(f"{out} exists and is not a curate report folder; choose another --out or remove it")
    shutil.rmtree(out / "viewer", ignore_errors=True)


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def write_report(config: ReportConfig) -> ReportResult:
    """Write OUT/index.html with its figures, assets and viewer files; returns where and how long."""
    from curate.figures.build import FiguresConfig, write_figures
    from curate.figures.common import TINY_NOTE, file_stem
    from curate.figures.fig_models import model_rho
    from curate.figures.index import FIGURES as CAPTIONS
    from curate.figures.index import RULE_TEXT, spearman_line
    from curate.runs import resolve_run
    from curate.store import Store

    out = Path(config.out)
    prepare_out(out)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    with Store(config.db) as store:
        con = store.con
        run_id = resolve_run(con, run_id=config.run, student=config.student)
        ids = run_selections(con, run_id, config.selections)
        summary, rejects = store_summary(con)
        chosen = selection_tables(con, ids)
        seconds["store"] = time.perf_counter() - start
        figures = write_figures(con, FiguresConfig(str(config.db), run_id, str(out / "figures"), config.rule))
        seconds["figures"] = figures.sql_s + figures.plot_s
        mark = time.perf_counter()
        student, note = viewer_student(con, run_id, config)
        shown = viewer.build(con, run_id, out, ids, config.questions, config.samples, config.seed, student, note)
        seconds["viewer"] = time.perf_counter() - mark

    mark = time.perf_counter()
    data = figures.data
    stats = data.stats[data.rule]
    datasets = [
        {
            "name": d,
            "stem": file_stem(d),
            "table": paper_table(analysis.paper_table(stats, d)),
            "confounds": paper_table(analysis.paper_table(stats, d, metrics=analysis.CONFOUND_METRICS)),
            "spearman": spearman_line(data.spearman, d),
            "model_rho": model_rho(data.models.filter(pl.col("dataset") == d)),
        }
        for d in data.datasets
    ]
    page = (
        _environment()
        .get_template("index.html.j2")
        .render(
            db=config.db,
            run_id=run_id,
            student=data.student,
            rule_text=RULE_TEXT[data.rule],
            tiny_note=TINY_NOTE if "tiny" in Path(data.student).name else None,
            figure_notes=figures.notes,
            summary=summary,
            rejects=rejects,
            datasets=datasets,
            figures=[{"stem": s, "caption": CAPTIONS[s]} for s in FIGURES],
            models_caption=CAPTIONS["fig_models"],
            selections=chosen,
            viewer=shown,
            config=config,
            viewer_index=json.dumps(
                {
                    "questions": shown.index,
                    "scale": shown.nll_scale,
                    "note": shown.note,
                    "segments": viewer.SEGMENT_CODES,
                },
                ensure_ascii=False,
            ).replace("</", "<\\/"),
        )
    )
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for asset in sorted((HERE / "static").iterdir()):
        shutil.copyfile(asset, assets / asset.name)
    (out / "index.html").write_text(page, encoding="utf-8")
    (out / CONFIG_NAME).write_text(json.dumps({**asdict(config), "run": run_id}, indent=2) + "\n")
    seconds["page"] = time.perf_counter() - mark
    return ReportResult(
        out / "index.html", seconds, len(shown.index), shown.detailed, student is not None, note, tuple(figures.notes)
    )
