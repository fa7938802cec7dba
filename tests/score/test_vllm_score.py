"""`curate score --backend vllm` (vLLM's CPU build in `.venv-vllm`) scores SmolLM2 on real MINT
runs and agrees with the transformers backend per turn, float32, and so do its token ranks, RSR and
IFD's alone pass (test_rsr_ifd.py holds the transformers backend's to the full-forward references of
tests/reference.py on the same runs)."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest
from test_rsr_ifd import run_rows
from vllm_env import run

from curate.ingest import IngestOptions, ingest
from curate.score import ScoreConfig, score
from curate.store import Store

pytestmark = pytest.mark.vllm

RUNS = 2  # the first runs of the MINT GSM8K file: 7 assistant turns, ~3.5k tokens


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

    reference = score(ScoreConfig(db=str(db), student=str(smollm2_cached), ifd=True, progress=False)).run_id
    done = run(
        "curate",
        "score",
        "--db",
        str(db),
        "--student",
        str(smollm2_cached),
        "--backend",
        "vllm",
        "--ifd",
        "--no-progress",
    )
    lines = done.stdout.strip().splitlines()
    run_id = lines[-1].removeprefix("run_id=")
    assert "token ranks (RSR): clipped at 100" in lines

    with Store(db, read_only=True) as store:
        backends = dict(store.sql("SELECT run_id, backend FROM scoring_runs").rows())
    assert backends == {reference: "transformers", run_id: "vllm"}
    expected, got = turn_rows(db, reference), turn_rows(db, run_id)
    assert len(expected) == 7 and got.keys() == expected.keys()
    assert {k: n for k, (n, _) in got.items()} == {k: n for k, (n, _) in expected.items()}
    gaps = {k: abs(got[k][1] - expected[k][1]) for k in expected}
    assert max(gaps.values()) < 1e-3, sorted(gaps.items(), key=lambda kv: -kv[1])[:3]

    # vLLM ranks by log-probabilities at or above the token's: a float near-tie may move one rank
    want, mine = run_rows(db, reference), run_rows(db, run_id)
    assert mine.keys() == want.keys() and len(want) == RUNS
    for tid, w in want.items():
        m = mine[tid]
        assert m["alone"].keys() == w["alone"].keys() and len(w["alone"]) > 0
        for turn, (_, _, rank_sum) in w["turns"].items():
            assert abs(m["turns"][turn][2] - rank_sum) / rank_sum < 1e-4, (tid, turn)
        for turn, (n, nll_sum) in w["alone"].items():
            assert m["alone"][turn][0] == n and abs(m["alone"][turn][1] - nll_sum) / n < 1e-3, (tid, turn)
        assert abs(m["rsr"] / w["rsr"] - 1) < 1e-4 and abs(m["ifd"] / w["ifd"] - 1) < 1e-3, tid
