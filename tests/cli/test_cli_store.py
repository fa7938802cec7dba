"""The store's CLI: synth -> ingest -> stats / sql, through `curate.cli.main` as a user calls it."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from curate.cli import main
from curate.store import Store

STATS_KEYS = {
    "dataset",
    "questions",
    "trajectories",
    "failed_runs",
    "correct",
    "clean",
    "parse_error",
    "max_steps",
    "exec_error",
    "assistant_turns",
    "tool_calls",
    "rejects",
}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with synthetic HotPotQA and MATH runs and one file holding a bad record."""
    folder = tmp_path_factory.mktemp("cli")
    db = folder / "s.duckdb"
    for source in ("hotpotqa", "math"):
        out = folder / f"{source}.jsonl.zst"
        assert main(["synth", "--questions", "6", "--k", "3", "--source", source, "--out", str(out)]) == 0
        assert main(["ingest", str(out), "--db", str(db), "--dataset", f"synth-{source}", "--quiet"]) == 0
    bad = Path(__file__).parents[1] / "data" / "bad" / "score_yes.jsonl"
    assert main(["ingest", str(bad), "--db", str(db), "--dataset", "synth-math", "--quiet"]) == 0
    return db


def test_ingest_prints_a_summary_and_skips_a_second_time(tmp_path: Path, capsys) -> None:
    bad = Path(__file__).parents[1] / "data" / "bad" / "score_yes.jsonl"
    db = tmp_path / "s.duckdb"
    assert main(["ingest", str(bad), "--db", str(db), "--dataset", "other", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "score_yes.jsonl -> 'other' [smolagents]: 3 records, 2 trajectories, 0 failed runs, 2 questions" in out
    assert "1 rejects" in out and "SELECT source_line, reason FROM ingest_rejects WHERE ingest_id = 1" in out
    assert main(["ingest", str(bad), "--db", str(db), "--dataset", "other", "--quiet"]) == 0
    assert "already ingested into 'other' (ingest 1), nothing to do" in capsys.readouterr().out


def test_stats_json_has_the_promised_keys(db: Path, capsys) -> None:
    assert main(["stats", "--db", str(db), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["dataset"] for r in rows] == ["synth-hotpotqa", "synth-math"]
    for row in rows:
        assert STATS_KEYS <= set(row)
    with Store(db, read_only=True) as store:
        counted = store.sql(
            "SELECT count(*) AS n, count(*) FILTER (WHERE clean) AS c, sum(tool_calls) AS t "
            "FROM trajectories WHERE dataset = 'synth-math'"
        ).row(0)
        failed = store.sql("SELECT count(*) FROM failed_runs WHERE dataset = 'synth-math'").item()
    math = next(r for r in rows if r["dataset"] == "synth-math")
    assert (math["trajectories"], math["clean"], math["tool_calls"]) == counted
    assert math["trajectories"] + math["failed_runs"] == 6 * 3 + 2 and math["failed_runs"] == failed
    assert (math["questions"], math["rejects"]) == (6 + 2, 1)


def test_stats_table_shows_rates_and_means(db: Path, capsys) -> None:
    assert main(["stats", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    for header in ("correct_pct", "clean_pct", "mean_turns", "mean_tool_calls", "synth-hotpotqa"):
        assert header in out


def test_sql_binds_parameters_as_data(db: Path, capsys) -> None:
    hostile = "x'); DROP TABLE trajectories; --"
    query = "SELECT $label AS label, count(*) AS n FROM trajectories WHERE dataset = $d AND sample_idx < $k"
    args = [
        "sql",
        "--db",
        str(db),
        query,
        "--param",
        f"label={hostile}",
        "--param",
        "d=synth-hotpotqa",
        "--param",
        "k=2",
        "--format",
        "json",
    ]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    with Store(db, read_only=True) as store:
        n = store.sql("SELECT count(*) FROM trajectories WHERE dataset = 'synth-hotpotqa' AND sample_idx < 2").item()
        assert store.sql("SELECT count(*) FROM trajectories").item() > n > 0
    assert printed == [{"label": hostile, "n": n}]


def test_sql_file_to_csv_and_parquet(db: Path, tmp_path: Path, capsys) -> None:
    sql = tmp_path / "per_question.sql"
    sql.write_text("SELECT question_id, count(*) AS n FROM trajectories WHERE dataset = $d GROUP BY 1 ORDER BY 1")
    csv = tmp_path / "out.csv"
    assert (
        main(
            [
                "sql",
                "--db",
                str(db),
                "--file",
                str(sql),
                "--param",
                "d=synth-math",
                "--format",
                "csv",
                "--out",
                str(csv),
            ]
        )
        == 0
    )
    frame = pl.read_csv(csv)
    assert frame.columns == ["question_id", "n"] and frame.height == 8
    parquet = tmp_path / "stats.parquet"
    assert main(["sql", "--db", str(db), "--file", "stats", "--format", "parquet", "--out", str(parquet)]) == 0
    assert STATS_KEYS <= set(pl.read_parquet(parquet).columns)
    assert main(["sql", "--db", str(db), "SELECT 1", "--format", "parquet"]) == 2
    assert "--format parquet needs --out PATH" in capsys.readouterr().err
    assert main(["sql", "--db", str(db)]) == 2
    assert "give the SQL text or --file" in capsys.readouterr().err


def test_ingest_cli_path_options(tmp_path: Path, capsys) -> None:
    rows = [
        {
            "q": {"id": "a1", "text": "Add 1 and 1."},
            "ok": 1,
            "log": {
                "turns": [
                    {"from": "human", "value": "Add 1 and 1."},
                    {"from": "gpt", "value": "Code:\nprint(1+1)<end_code>"},
                ]
            },
        }
    ]
    path = tmp_path / "custom.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    db = tmp_path / "c.duckdb"
    assert (
        main(
            [
                "ingest",
                str(path),
                "--db",
                str(db),
                "--dataset",
                "c",
                "--quiet",
                "--messages-path",
                "log.turns",
                "--question-path",
                "q.text",
                "--question-id-path",
                "q.id",
                "--correct-path",
                "ok",
                "--role-key",
                "from",
                "--content-key",
                "value",
            ]
        )
        == 0
    )
    assert "[jsonpath]: 1 records, 1 trajectories" in capsys.readouterr().out
    with Store(db, read_only=True) as store:
        assert store.sql("SELECT question_id, correct, tool_calls FROM trajectories").row(0) == ("a1", True, 1)
