"""Token ranks (RSR) and IFD's alone pass: `curate score` against the independent full-forward
references of tests/reference.py, on the tiny model and on real MINT runs under SmolLM2; identical
samples tie; the alone pass resumes and runs once per token sequence; NLLs are those of a run
without ranks, bit for bit."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np
from factory import add_trajectories, new_store
from reference import reference_alone, reference_ifd, reference_rsr, reference_turn_ranks
from test_score import agent_rows

from curate.cli import main
from curate.ingest import IngestOptions, ingest
from curate.render import render_alone, stored_chats
from curate.score import ScoreConfig, score
from curate.score.nll import TOP1_NLL, TransformersBackend, supervised_scores
from curate.store import Store

MINT_RUNS = 1  # the first run of the MINT GSM8K file: 2 assistant turns, ~1.3k tokens


def run_rows(db: Path, run_id: str) -> dict:
    """Per trajectory: its turns' (tokens, nll_sum, rank_sum), alone turns' (tokens, nll_sum), RSR and IFD."""
    with Store(db, read_only=True) as store:
        turns = store.sql("SELECT * FROM turn_scores WHERE run_id = $r", r=run_id)
        alone = store.sql(
            "SELECT s.trajectory_id, a.turn, a.tokens, a.nll_sum FROM turn_alone_scores a"
            " JOIN trajectory_scores s ON s.run_id = a.run_id AND s.sequence_hash = a.sequence_hash"
            " WHERE a.run_id = $r",
            r=run_id,
        )
        rsr = dict(store.sql("SELECT trajectory_id, rsr FROM trajectory_rsr WHERE run_id = $r", r=run_id).rows())
        ifd = dict(store.sql("SELECT trajectory_id, ifd FROM trajectory_ifd WHERE run_id = $r", r=run_id).rows())
    out: dict = {}
    for t, m, n, s, r in turns.select("trajectory_id", "turn", "tokens", "nll_sum", "rank_sum").iter_rows():
        out.setdefault(t, {"turns": {}, "alone": {}})["turns"][m] = (n, s, r)
    for t, m, n, s in alone.iter_rows():
        out[t]["alone"][m] = (n, s)
    for t in out:
        out[t]["rsr"], out[t]["ifd"] = rsr.get(t), ifd.get(t)
    return out


def check_against_reference(db: Path, run_id: str, model, tokenizer, max_length: int) -> dict[str, float]:
    """Compare every trajectory of a run with the references; returns the largest relative gaps."""
    got = run_rows(db, run_id)
    with Store(db, read_only=True) as store:
        chats = stored_chats(store.con, list(got))
    worst = {"rsr": 0.0, "ifd": 0.0, "alone": 0.0, "rank_sum": 0.0}
    for tid, chat in chats.items():
        want = reference_turn_ranks(model, tokenizer, chat, max_length)
        alone = reference_alone(model, tokenizer, chat, max_length)
        mine = got[tid]
        assert sorted(mine["turns"]) == sorted(want) and sorted(mine["alone"]) == sorted(alone), tid
        for m, (n, _, r) in want.items():
            assert mine["turns"][m][0] == n
            worst["rank_sum"] = max(worst["rank_sum"], abs(mine["turns"][m][2] - r) / r)
        for m, (n, s) in alone.items():
            assert mine["alone"][m][0] == n
            worst["alone"] = max(worst["alone"], abs(mine["alone"][m][1] / n - s / n) / (s / n))
        worst["rsr"] = max(worst["rsr"], abs(mine["rsr"] / reference_rsr(want) - 1))
        history = {m: (n, s) for m, (n, s, _) in want.items()}
        worst["ifd"] = max(worst["ifd"], abs(mine["ifd"] / reference_ifd(history, alone) - 1))
    return worst


def test_ranks_and_ifd_match_the_references_on_the_tiny_model(tmp_path, tiny_model_dir, tiny_model, tiny_tokenizer):
    db = tmp_path / "s.duckdb"
    add_trajectories(new_store(db), agent_rows(24, seed=3, long_every=1000))
    run_id = score(ScoreConfig(db=str(db), student=str(tiny_model_dir), ifd=True, progress=False)).run_id
    worst = check_against_reference(db, run_id, tiny_model, tiny_tokenizer, 10**6)
    assert worst["rank_sum"] == 0.0  # a random model's logits do not tie to float precision here
    assert worst["rsr"] < 1e-6 and worst["alone"] < 1e-4 and worst["ifd"] < 1e-4, worst
    with Store(db, read_only=True) as store:
        clips = store.sql("SELECT DISTINCT rank_clip FROM turn_scores")["rank_clip"].to_list()
        flags = store.sql("SELECT flagged, ifd >= 1 AS above FROM turn_ifd")
    assert clips == [100]
    assert flags["flagged"].to_list() == flags["above"].to_list()


def test_real_mint_runs_under_smollm2_match_the_references(tmp_path, shared_data, smollm2_cached) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = tmp_path / "mint_gsm8k_head.jsonl"
    with gzip.open(shared_data / "trajectories" / "mint" / "mint_gsm8k.jsonl.gz", "rt") as fh:
        source.write_text("".join(itertools.islice(fh, MINT_RUNS)))
    db = tmp_path / "store.duckdb"
    with Store(db) as store:
        ingest(store, [source], "mint-gsm8k", options=IngestOptions(progress=False))
    result = score(ScoreConfig(db=str(db), student=str(smollm2_cached), ifd=True, progress=False))
    assert result.ranks == "clipped at 100" and result.alone_scored == MINT_RUNS and result.alone_left == 0
    model = AutoModelForCausalLM.from_pretrained(smollm2_cached, dtype="float32").eval()
    tokenizer = AutoTokenizer.from_pretrained(smollm2_cached)
    worst = check_against_reference(db, result.run_id, model, tokenizer, result.max_length)
    # A float near-tie between two logits may move a token one rank: well within 1e-4 of a rank sum.
    assert worst["rsr"] < 1e-4 and worst["rank_sum"] < 1e-4, worst
    assert worst["alone"] < 1e-4 and worst["ifd"] < 1e-4, worst


def test_ranks_leave_the_nlls_bit_identical(tiny_model_dir) -> None:
    rng = np.random.default_rng(0)
    seqs = [(rng.integers(0, 200, n).tolist(), [-1] * 5 + [0] * (n - 5)) for n in (40, 90, 300)]
    backend = TransformersBackend(str(tiny_model_dir))
    ranked = backend.scores(seqs)
    plain = backend.nll(seqs)
    for with_ranks, without in zip(ranked, plain):
        assert with_ranks.nll.tobytes() == without.tobytes()
        assert with_ranks.rank is not None and with_ranks.rank.min() >= 1 and with_ranks.rank.max() <= 100
    # a token its NLL calls the top-1 one is never compared, and is indeed rank 1
    chunked = supervised_scores(backend.engine, seqs, chunk_bytes=4 * 1024 * 7, rank_clip=100)
    for a, b in zip(ranked, chunked):
        assert np.array_equal(a.rank, b.rank)
        assert (a.rank[a.nll < TOP1_NLL] == 1).all()


def test_identical_samples_tie_and_the_alone_pass_runs_once_per_sequence(tmp_path, tiny_model_dir) -> None:
    rows = agent_rows(6, seed=9, long_every=1000)
    twins = [{**rows[1], "question_id": rows[1]["question_id"]} for _ in range(3)]
    db = tmp_path / "s.duckdb"
    ids = add_trajectories(new_store(db), [*rows, *twins])
    # scored in parts of one trajectory, so the twins are scored in different blocks
    first = score(ScoreConfig(db=str(db), student=str(tiny_model_dir), part_size=1, progress=False))
    assert first.alone_scored == 0 and first.ranks == "clipped at 100"
    with Store(db, read_only=True) as store:
        assert store.sql("SELECT count(*) FROM turn_alone_scores").item() == 0
        assert store.sql("SELECT count(*) FROM trajectory_ifd").item() == 0
    second = score(ScoreConfig(db=str(db), student=str(tiny_model_dir), part_size=1, ifd=True, progress=False))
    assert (second.run_id, second.scored) == (first.run_id, 0)
    assert second.alone_scored == len(rows) and second.alone_left == 0  # the twins share rows[1]'s sequence
    third = score(ScoreConfig(db=str(db), student=str(tiny_model_dir), ifd=True, progress=False))
    assert third.alone_scored == 0 and third.lines()[2].startswith("IFD alone pass: 0 token sequences")
    got = run_rows(db, first.run_id)
    for twin in (ids[1], *ids[len(rows) :]):
        assert (got[twin]["rsr"], got[twin]["ifd"]) == (got[ids[1]]["rsr"], got[ids[1]]["ifd"])


def test_render_alone_supervises_what_a_turn_in_a_chat_supervises(tiny_tokenizer) -> None:
    content = "Thought: café 🙂\nCode:\n```py\nprint(1)\n```<end_code>"
    alone = render_alone(tiny_tokenizer, content)
    assert (
        alone.text == f"<|im_start|>assistant\n{content}<|im_end|>\n"
    )  # the tiny template has no default system prompt
    supervised = [i for i, m in zip(alone.input_ids, alone.turn) if m == 0]
    assert tiny_tokenizer.decode(supervised) == f"{content}<|im_end|>\n"
    assert alone.content_spans == [(len("<|im_start|>assistant\n"), len("<|im_start|>assistant\n") + len(content))]


def test_cli_ifd_prints_the_alone_pass(tmp_path, tiny_model_dir, capsys) -> None:
    db = tmp_path / "s.duckdb"
    add_trajectories(new_store(db), [{"question_id": "q1", "messages": [("user", "2+2?"), ("assistant", "4")]}])
    assert main(["score", "--db", str(db), "--student", str(tiny_model_dir), "--ifd", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "token ranks (RSR): clipped at 100"
    assert lines[2].startswith("IFD alone pass: 1 token sequences, ") and lines[2].endswith(
        "every sequence of the run has it"
    )
    with Store(db, read_only=True) as store:
        ((tokens, rank_sum, clip),) = store.sql("SELECT tokens, rank_sum, rank_clip FROM turn_scores").rows()
        assert tokens <= rank_sum <= 100 * tokens and clip == 100
        assert store.sql("SELECT count(*) FROM trajectory_ifd").item() == 1
