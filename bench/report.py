"""Benchmark: `curate report` on a store of 1M scored trajectories (bench/select.py's store, plus
messages for every trajectory and three selections), next to `curate figures` alone on the same
store (what a user would otherwise run), the page's size next to the store's text, and how fast
headless chromium shows the page and opens a trajectory.

The run's student is set to the built-in `tiny` model, so the viewer recomputes token NLLs with the
real scorer code (its numbers differ from the store's synthetic scores; the page says so). The
repetition cache (filled once per store, before any analysis) is filled and timed apart.

Run: python -m bench.report     (defaults: --questions 100000 --k 10 --threads 2)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.select import RUN, build
from curate.analysis import refresh_repetition
from curate.figures.build import FiguresConfig, write_figures
from curate.report.config import ReportConfig
from curate.report.report import write_report
from curate.select import SelectConfig, select
from curate.store import Store

# Two messages of task, then per scored turn a CodeAct step and its observation.
MESSAGES = """
INSERT INTO messages
SELECT trajectory_id, 0, 'system', 'system', 'You are an expert assistant who can solve any task using code blobs.'
FROM trajectories
UNION ALL
SELECT trajectory_id, 1, 'user', 'user', 'New task:\nQuestion ' || question_id || ': what is the value?'
FROM trajectories
UNION ALL
SELECT trajectory_id, 2 + 2 * m, 'assistant', 'assistant',
       'Thought: step ' || m || ' of ' || question_id || ', compute and print.\nCode:\n```py\nx = ' || m ||
       ' * 7\nprint(x)\n```<end_code>'
FROM (SELECT trajectory_id, question_id, unnest(range(assistant_turns)) AS m FROM trajectories)
UNION ALL
SELECT trajectory_id, 3 + 2 * m, 'tool-response', 'tool-response',
       'Call id: call_' || m || '\nObservation:\nExecution logs:\n' || (m * 7) || '\nLast output from code snippet:\nNone'
FROM (SELECT trajectory_id, unnest(range(assistant_turns)) AS m FROM trajectories)
"""


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def browse(index: Path) -> tuple[float, float] | None:
    """Seconds headless chromium takes to show the page with its first trajectory, and to open another."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    chromium = shutil.which("chromium")
    if chromium is None:
        return None
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=flags)
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(index.as_uri())
        page.wait_for_selector("#trajectory .tok")
        shown = time.perf_counter() - start
        option = page.locator("#question-select option").last
        question_id = option.inner_text().split(" · ")[0]
        start = time.perf_counter()
        page.select_option("#question-select", value=option.get_attribute("value"))
        page.wait_for_function(
            "id => document.querySelector('#question-text .qid').textContent.endsWith(id)", arg=f"/ {question_id}"
        )
        page.locator("#samples tbody tr.openable").last.click()
        page.wait_for_selector("#samples tbody tr.openable:last-child.open")
        opened = time.perf_counter() - start
        browser.close()
    return shown, opened


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--viewer-questions", type=int, default=5, help="report --questions (per data set)")
    parser.add_argument("--out", type=Path, help="keep the store and pages here (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        db = work / "bench.duckdb"
        start = time.perf_counter()
        with Store(db) as store:
            store.con.execute(f"SET threads = {int(args.threads)}")
            build(store, args.questions, args.k)
            with store.transaction() as con:
                con.execute(MESSAGES)
                con.execute("UPDATE scoring_runs SET student = 'tiny' WHERE run_id = $r", {"r": RUN})
            for policy in ("min_nll", "median_nll", "random"):
                select(store, SelectConfig(policy=policy, run=RUN, k=args.k, name=policy))
            store.con.execute("CHECKPOINT")
            built = time.perf_counter() - start
            start = time.perf_counter()
            refresh_repetition(store.con)
            cache = time.perf_counter() - start
            counts = store.con.execute(
                "SELECT (SELECT count(*) FROM trajectories), (SELECT count(*) FROM messages),"
                " (SELECT sum(length(text)) FROM messages)"
            ).fetchall()[0]

        with Store(db) as store:
            store.con.execute(f"SET threads = {int(args.threads)}")
            start, cpu = time.perf_counter(), time.process_time()
            write_figures(store.con, FiguresConfig(str(db), RUN, str(work / "figures")))
            figures_s, figures_cpu = time.perf_counter() - start, time.process_time() - cpu

        # write_report opens the store itself; DuckDB's default thread count is the core count
        start, cpu = time.perf_counter(), time.process_time()
        result = write_report(
            ReportConfig(db=str(db), out=str(work / "report"), run=RUN, questions=args.viewer_questions)
        )
        report_s, report_cpu = time.perf_counter() - start, time.process_time() - cpu
        page_bytes = folder_bytes(work / "report") - folder_bytes(work / "report" / "figures")
        viewer_bytes = folder_bytes(work / "report" / "viewer")

        n_traj, n_messages, text_bytes = counts
        print(
            f"store: {n_traj:,} trajectories, {n_messages:,} messages ({text_bytes / 1e6:,.0f} MB of text), "
            f"3 selections (built in {built:.0f} s; repetition cache filled once in {cache:.1f} s)"
        )
        print(f"{'step':<52}{'wall s':>9}{'CPU s':>9}   (CPU: all threads; load average {os.getloadavg()[0]:.1f})")
        print(f"{'curate figures (tables + figures alone)':<52}{figures_s:>9.1f}{figures_cpu:>9.1f}")
        print(
            f"{'curate report (target < 30 s)':<52}{report_s:>9.1f}{report_cpu:>9.1f}   "
            f"{'OK' if report_s < 30 else 'OVER'}"
        )
        for part, seconds in result.seconds.items():
            print(f"{'  ' + part:<52}{seconds:>9.1f}")
        print(f"report / figures = {report_s / figures_s:.2f}")
        print(f"viewer: {result.questions} questions, {result.detailed} trajectories with token NLLs (tiny model)")
        print(
            f"page without figures: {page_bytes / 1e6:.2f} MB (viewer files {viewer_bytes / 1e6:.2f} MB, loaded one "
            f"question at a time) vs {text_bytes / 1e6:,.0f} MB of message text in the store: "
            f"{text_bytes / page_bytes:,.0f}x smaller"
        )
        timing = browse(result.index)
        if timing is None:
            print("browser: chromium or playwright not installed (.ci/setup-browser); page timing skipped")
        else:
            print(
                f"headless chromium: page with its first trajectory shown in {timing[0]:.2f} s; "
                f"another question's trajectory opened in {timing[1]:.2f} s"
            )


if __name__ == "__main__":
    main()
