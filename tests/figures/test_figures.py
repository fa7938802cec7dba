"""`curate figures`: every artefact is written, the tables hold the SQL numbers, two runs give the same bytes."""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from factory import add_scores, add_trajectories, new_store

from curate import analysis
from curate.analysis import AnalysisConfig
from curate.cli import main
from curate.figures import index
from curate.figures.build import FiguresConfig, write_all, write_figures
from curate.figures.common import collect
from curate.store import Store

REPO = Path(__file__).resolve().parents[2]
DATASETS = {"alpha": "alpha", "beta/x": "beta_x"}  # data set -> file stem
FIGURES = ["fig3", "fig4", "fig_models"]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file store: two data sets (one with a '/' in its name), 6 questions x 5 samples, 3 teachers."""
    path = tmp_path_factory.mktemp("figures") / "store.duckdb"
    store = new_store(path)
    rows, scores = [], []
    for d, dataset in enumerate(DATASETS):
        for q in range(6):
            for s in range(5):
                k = d * 100 + q * 10 + s
                rows.append(
                    {
                        "dataset": dataset,
                        "question_id": f"q{q}",
                        "correct": (k * 7) % 3 != 0,
                        "teacher_model": f"teacher-{k % 3}",
                        "tool_calls": k % 4,
                        "question_text": "word " * (3 + q),
                    }
                )
                # NLLs on a coarse grid, so that samples tie
                scores.append([0.5 + ((k * 13) % 5) / 4, 1.0 + (k % 2)])
    ids = add_trajectories(store, rows)
    add_scores(store, "run", dict(zip(ids, scores)))
    store.close()
    return path


def expected_files() -> set[str]:
    names = {"index.md", "models.csv", "figures_config.json"}
    names |= {f"{f}.{ext}" for f in FIGURES for ext in ("png", "pdf")}
    for stem in DATASETS.values():
        names |= {f"table_{stem}.{ext}" for ext in ("csv", "md", "tex")}
        names |= {f"confounds_{stem}.{ext}" for ext in ("csv", "md")}
    return names


def test_figures_command_writes_every_artefact_deterministically(db: Path, tmp_path: Path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["figures", "--db", str(db), "--run", "run", "--out", str(first)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"wrote {len(expected_files())} files (SQL ")
    assert printed[1:] == [str(first / "index.md")]  # no note: every bucket holds trajectories
    assert main(["figures", "--db", str(db), "--run", "run", "--out", str(second)]) == 0
    assert {p.name for p in first.iterdir()} == expected_files()
    for path in first.iterdir():
        if path.suffix in (".csv", ".md", ".tex", ".png", ".pdf"):
            assert path.read_bytes() == (second / path.name).read_bytes(), path.name
    for figure in FIGURES:
        assert (first / f"{figure}.png").read_bytes().startswith(b"\x89PNG")
        assert (first / f"{figure}.pdf").read_bytes().startswith(b"%PDF")
    index = (first / "index.md").read_text()
    assert "![fig3](fig3.png)" in index and "![fig4](fig4.png)" in index and "says little about learnability" in index
    assert "This run scores with a tiny random model." in index  # add_scores records student 'tiny'


def test_tiny_model_caveat_only_for_tiny_random_students(db: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    with Store(db, read_only=True) as store:
        data = collect(store.con, "run")
    real = tmp_path / "real-student"  # any checkpoint folder not written by `curate tiny-model`
    real.mkdir()
    (real / "config.json").write_text("{}")
    for student, caveat in (
        ("tiny", True),
        ("tiny-qwen2.5", True),
        (str(tiny_model_dir), True),
        ("smollm2", False),
        ("smollm2-bf16", False),
        (str(real), False),
    ):
        page = index.text(dataclasses.replace(data, student=student))
        assert ("> **Caveat.** This run scores with a tiny random model." in page) == caveat, student
        assert ("says little about learnability" in page) == caveat, student


def test_table_csv_holds_the_sql_statistics(db: Path, tmp_path: Path):
    index = write_all(db, tmp_path, run_id="run")
    assert index == tmp_path / "index.md"
    with Store(db, read_only=True) as store:
        stats = analysis.bucket_stats(store.con, AnalysisConfig("run"))
    table = analysis.paper_table(stats, "beta/x")
    with open(tmp_path / "table_beta_x.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["metric", "G-E", "G-M", "G-H", "PQ-E", "PQ-M", "PQ-H"]
    assert [r[0] for r in rows[1:]] == ["N_traj", "N_q", "mean_nll", "traj_chars", "tool_calls", "acc", "q_words"]
    for written, computed in zip(rows[1:], table.iter_rows()):
        assert [float(v) for v in written[1:]] == pytest.approx(computed[1:], abs=1e-6)
    assert sum(int(v) for v in rows[1][1:4]) == 30  # every beta/x trajectory once in the global split
    tex = (tmp_path / "table_beta_x.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex and r"beta/x" in tex
    assert (tmp_path / "table_alpha.md").read_text().startswith("| metric | G-E | G-M | G-H | PQ-E | PQ-M | PQ-H |\n")


def test_python_m_figures_from_the_repo_root(db: Path, tmp_path: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "figures",
            "--db",
            str(db),
            "--student",
            "tiny",
            "--out",
            str(tmp_path),
            "--rule",
            "rank",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert {p.name for p in tmp_path.iterdir()} == expected_files()
    assert "rank rule" in (tmp_path / "index.md").read_text()


def test_a_figure_script_prints_the_files_it_writes(db: Path, tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "figures.fig4", "--db", str(db), "--run", "run", "--out", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(tmp_path / "fig4.png"), str(tmp_path / "fig4.pdf")]
    assert (tmp_path / "fig4.png").read_bytes().startswith(b"\x89PNG")


def test_figures_errors(db: Path, tmp_path: Path, capsys):
    assert main(["figures", "--db", str(db), "--run", "nope", "--out", str(tmp_path)]) == 2
    assert "no scoring run 'nope'" in capsys.readouterr().err


@pytest.fixture(scope="module", params=[1, 2], ids=["K=1", "K=2"])
def few_samples(request, tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[int, Path]:
    """A real store of K=1 or K=2 synthetic runs per question (a `curate eval` store has K=1), scored."""
    k, root = request.param, tmp_path_factory.mktemp(f"k{request.param}")
    runs, db = root / "runs.jsonl", root / "store.duckdb"
    assert main(["synth", "--questions", "6", "--k", str(k), "--out", str(runs)]) == 0
    assert main(["ingest", str(runs), "--db", str(db), "--dataset", "d", "--quiet"]) == 0
    assert main(["score", "--db", str(db), "--student", str(tiny_model_dir), "--no-progress"]) == 0
    return k, db


def few_samples_note(k: int) -> str:
    """What the commands say of a store of K <= 2: per-question tertiles leave 3 - K buckets empty."""
    return (
        f"d, per question: {3 - k} of 3 buckets empty: questions have too few samples (a split within a "
        "question needs 3 or more)"
    )


def test_figures_of_a_store_with_two_samples_or_fewer_per_question(few_samples, tmp_path):
    k, db = few_samples
    with Store(db) as store:
        run_id = store.sql("SELECT run_id FROM scoring_runs").item()
        result = write_figures(store.con, FiguresConfig(str(db), run_id, str(tmp_path)))
    assert result.notes == [few_samples_note(k)] and result.index == tmp_path / "index.md"
    assert f"> **Note.** {few_samples_note(k)}\n" in result.index.read_text()
    with Store(db, read_only=True) as store:
        stats = collect(store.con, run_id).stats[analysis.DEFAULT_RULE]
    empty = stats.filter(
        (stats["scope"] == "per_question") & (stats["teacher_model"] == analysis.ALL_MODELS) & (stats["n_traj"] == 0)
    )
    assert empty.height == 3 - k  # what the note says is what the SQL found
    for figure in FIGURES:
        assert (tmp_path / f"{figure}.png").read_bytes().startswith(b"\x89PNG")


def test_report_of_a_store_with_two_samples_or_fewer_per_question(few_samples, tiny_model_dir, tmp_path, capsys):
    k, db = few_samples
    capsys.readouterr()
    page = tmp_path / "page"
    assert (
        main(
            [
                "report",
                "--db",
                str(db),
                "--student",
                str(tiny_model_dir),
                "--out",
                str(page),
                "--questions",
                "1",
                "--samples",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [f"note: {few_samples_note(k)}", str(page / "index.html")]
    assert f"<strong>Note.</strong> {few_samples_note(k)}</p>" in (page / "index.html").read_text()
    assert (page / "figures" / "fig3.png").read_bytes().startswith(b"\x89PNG")
