"""`curate score --backend vllm` (vLLM's CPU build in `.venv-vllm`) scores SmolLM2 on real MINT
runs and agrees with the transformers backend per turn, float32; its token ranks and IFD's alone
pass agree with the full-forward references of tests/reference.py."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest
from test_rsr_ifd import check_against_reference
from vllm_env import run

from curate.ingest import IngestOptions, ingest
from curate.score import score_store
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

    reference = score_store(db, str(smollm2_cached), progress=False).run_id
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

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2_cached, dtype="float32").eval()
    with Store(db, read_only=True) as store:
        max_length = store.sql("SELECT max_length FROM scoring_runs WHERE run_id = $r", r=run_id).item()
    worst = check_against_reference(db, run_id, model, AutoTokenizer.from_pretrained(smollm2_cached), max_length)
    # vLLM ranks by log-probabilities at or above the token's: a float near-tie may move one rank
    assert worst["rsr"] < 1e-4 and worst["rank_sum"] < 1e-4 and worst["ifd"] < 1e-4, worst
