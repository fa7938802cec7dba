"""`curate score --backend vllm` (vLLM's CPU build in `.venv-vllm`) scores SmolLM2 on real MINT
runs and agrees with the transformers backend per turn, float32."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest
from vllm_env import run

from curate.ingest import IngestOptions, ingest
from curate.score import score_store
from curate.store import Store

pytestmark = pytest.mark.vllm

RUNS = 4  # the first runs of the MINT GSM8K file: 14 assistant turns, ~7k tokens


def turn_rows(db: Path, run_id: str) -> dict[tuple[str, int], tuple[int, float]]:
    with Store(db, read_only=True) as store:
        rows = store.sql("SELECT trajectory_id, turn, tokens, nll_mean FROM turn_scores WHERE run_id = $r", r=run_id)
    return {(t, m): (n, nll) for t, m, n, nll in rows.rows()}


def test_vllm_scores_real_mint_runs_like_transformers(tmp_path, shared_data, smollm2_cached) -> None:
    source = tmp_path / "mint_gsm8k_head.jsonl"
    with gzip.open(shared_data / "trajectories" / "mint" / "mint_gsm8k.jsonl.gz", "rt") as fh:
        source.write_text("".join(itertools.islice(fh, RUNS)))
    db = tmp_path / "store.duckdb"
    with Store(db) as store:
        (summary,) = ingest(store, [source], "gsm8k", options=IngestOptions(progress=False))
    assert (summary.format, summary.trajectories) == ("mint", RUNS)

    reference = score_store(db, str(smollm2_cached), progress=False).run_id
    done = run(
        "curate", "score", "--db", str(db), "--student", str(smollm2_cached), "--backend", "vllm", "--no-progress"
    )
    run_id = done.stdout.strip().splitlines()[-1].removeprefix("run_id=")

    with Store(db, read_only=True) as store:
        backends = dict(store.sql("SELECT run_id, backend FROM scoring_runs").rows())
    assert backends == {reference: "transformers", run_id: "vllm"}
    expected, got = turn_rows(db, reference), turn_rows(db, run_id)
    assert len(expected) == 14 and got.keys() == expected.keys()
    assert {k: n for k, (n, _) in got.items()} == {k: n for k, (n, _) in expected.items()}
    gaps = {k: abs(got[k][1] - expected[k][1]) for k in expected}
    assert max(gaps.values()) < 1e-3, sorted(gaps.items(), key=lambda kv: -kv[1])[:3]
