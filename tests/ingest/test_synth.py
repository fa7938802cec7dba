"""curate synth: deterministic, realistic smolagents runs for the real questions, bundled fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate.ingest import IngestOptions, ingest
from curate.ingest.synth import BUNDLED, MODEL_ID, SOURCES, SynthConfig, demo_store, load_questions, write
from curate.store import Store

QUIET = IngestOptions(progress=False)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    write(SynthConfig(questions=5, k=3, seed=7), tmp_path / "a.jsonl")
    write(SynthConfig(questions=5, k=3, seed=7), tmp_path / "b.jsonl")
    write(SynthConfig(questions=5, k=3, seed=8), tmp_path / "c.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()
    resolved = json.loads((tmp_path / "a.jsonl.synth.json").read_text())
    assert (resolved["seed"], resolved["records"], resolved["synthetic"]) == (7, 15, True)


def test_bundled_sample_is_the_head_of_the_shared_sets(tmp_path: Path, shared_data: Path, monkeypatch) -> None:
    shared = {name: load_questions(name)[0] for name in SOURCES}
    write(SynthConfig(questions=12, k=4, source="math"), tmp_path / "shared.jsonl")
    monkeypatch.setenv("CURATE_SHARED_DATA", str(tmp_path / "nowhere"))
    for name in SOURCES:
        bundled, where = load_questions(name)
        assert where == f"bundled sample ({BUNDLED} questions)"
        assert bundled == shared[name][:BUNDLED]
    write(SynthConfig(questions=12, k=4, source="math"), tmp_path / "bundled.jsonl")
    assert (tmp_path / "bundled.jsonl").read_bytes() == (tmp_path / "shared.jsonl").read_bytes()
    write(SynthConfig(questions=BUNDLED + 2, k=1), tmp_path / "cycled.jsonl")
    ids = [r["question_id"] for r in read(tmp_path / "cycled.jsonl")]
    assert len(set(ids)) == BUNDLED + 2 and ids[BUNDLED] == ids[0] + "-c1"


def _independent_counts(records: list[dict]) -> dict[str, int]:
    """Counts straight from the JSON: what ingest must find."""
    runs = [r for r in records if r["log_data"] is not None]

    def said(r: dict, role: str) -> list[str]:
        return [m["content"][0]["text"] for m in r["log_data"]["messages"] if m["role"] == role]

    flags = {
        f: sum(any(marker in t for t in said(r, "tool-response")) for r in runs)
        for f, marker in (
            ("parse_error", "Error in code parsing"),
            ("max_steps", "Reached max steps"),
            ("exec_error", "Code execution failed"),
        )
    }
    return {
        "trajectories": len(runs),
        "failed_runs": len(records) - len(runs),
        "correct": sum(r["score"] for r in runs),
        **flags,
        "assistant_turns": sum(len(said(r, "assistant")) for r in runs),
        "tool_calls": sum(t.count("Code:") for r in runs for t in said(r, "assistant")),
    }


@pytest.mark.parametrize("source", ["hotpotqa", "math"])
def test_ingested_runs_match_the_file(tmp_path: Path, source: str) -> None:
    path = tmp_path / f"{source}.jsonl"
    write(SynthConfig(questions=60, k=10, source=source, seed=1), path)
    records = read(path)
    assert all(r["synthetic"] is True and r["model_id"] == MODEL_ID for r in records)
    expected = _independent_counts(records)
    assert all(expected[f] > 0 for f in ("failed_runs", "parse_error", "max_steps", "exec_error"))
    store = Store(tmp_path / "s.duckdb")
    (summary,) = ingest(store, [path], source, options=QUIET)
    assert {k: getattr(summary, k) for k in expected} == expected
    assert (summary.questions, summary.rejects) == (60, 0)
    # The per-set correctness rate, spread over questions of varied difficulty.
    assert abs(summary.correct / summary.trajectories - SOURCES[source].accuracy) < 0.12
    per_question = store.sql("SELECT avg(correct::INT) AS rate FROM trajectories GROUP BY question_id")["rate"]
    assert per_question.min() < 0.3 and per_question.max() > 0.8
    steps = store.sql(
        "SELECT max_steps, min(tool_calls), max(tool_calls) FROM trajectories WHERE NOT parse_error "
        "GROUP BY 1 ORDER BY 1"
    ).rows()
    assert steps == [(False, 1, 5), (True, 6, 6)]  # 1-5 steps; at the limit, 5 and a forced final answer
    duplicates = store.sql("SELECT count(*) - count(DISTINCT content_hash) FROM trajectories").item()
    assert duplicates > 0


def test_log_data_as_string_reads_the_same(tmp_path: Path) -> None:
    write(SynthConfig(questions=8, k=3), tmp_path / "dict.jsonl")
    write(SynthConfig(questions=8, k=3, log_data_as_string=True), tmp_path / "str.jsonl")
    assert all(isinstance(r["log_data"], (str, type(None))) for r in read(tmp_path / "str.jsonl"))
    store = Store(tmp_path / "s.duckdb")
    a, b = (ingest(store, [tmp_path / f], f, options=QUIET)[0] for f in ("dict.jsonl", "str.jsonl"))
    assert (a.trajectories, a.clean, a.tool_calls) == (b.trajectories, b.clean, b.tool_calls)


def test_demo_store_returns_its_summaries_and_stats(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        done = demo_store(store, tmp_path / "runs", questions=3, k=2)
        again = demo_store(store, tmp_path / "runs", questions=3, k=2)
    assert [(s.dataset, s.records, s.already_ingested) for s in done.summaries] == [
        ("synth-hotpotqa", 6, False),
        ("synth-math", 6, False),
    ]
    assert all(s.already_ingested for s in again.summaries) and again.stats.equals(done.stats)
    assert sorted(done.stats["dataset"]) == ["synth-hotpotqa", "synth-math"]
    lines = done.lines()
    assert lines[:2] == [s.line() for s in done.summaries] and "synth-math" in lines[2]
