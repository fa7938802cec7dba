"""Work the scorer does once: shared prefixes (their key/value cache reused across a batch) and
repeated samples (one sequence scored once, its numbers given to every copy, bit for bit)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from factory import add_trajectories, new_store
from reference import reference_turns
from test_score import SYSTEM, agent_rows, make_store, stored_turns
from transformers import AttentionInterface

from curate.cli import main
from curate.engine import load_causal_lm
from curate.engine.cpu.attention import scoring_attention
from curate.render import chat_messages
from curate.score import ScoreConfig, score
from curate.score.nll import TransformersBackend, score_sequences, supervised_nll
from curate.score.prefix import plan_prefixes, shareable
from curate.select import run_policy
from curate.stats import run_summary
from curate.store import Store


def _tree(node) -> tuple:
    return (node.start, node.end, sorted(node.leaves), [_tree(c) for c in node.children])


def test_plan_nests_shared_prefixes_and_stops_before_the_first_scored_token() -> None:
    system, task_a, task_b = [1] * 300, [2] * 100, [3] * 100
    seqs = [
        (system + task_a + [7, 8, 9], [-1] * 400 + [-1, 0, 0]),  # scored from token 401
        (system + task_a + [6, 8], [-1] * 400 + [-1, 0]),
        (system + task_a + [7, 8, 9], [-1] * 399 + [0, 0, 0, 0]),  # scored from token 399
        (system + task_b + [5, 5], [-1] * 400 + [-1, 0]),
        (system + task_b + [5, 4], [-1] * 400 + [-1, 0]),
        ([4] * 50, [-1] * 10 + [0] * 40),
    ]
    assert [shareable(*s) for s in seqs] == [400, 400, 398, 400, 400, 9]
    root = plan_prefixes(seqs, min_saved=150)
    # system prompt for five; task_a for the first three (to 398: the third is scored from 399);
    # task_b's 100 tokens shared by two save 100 positions only: scored from the system prompt on
    assert _tree(root) == (0, 0, [5], [(0, 300, [3, 4], [(300, 398, [0, 1, 2], [])])])
    assert _tree(plan_prefixes(seqs, min_saved=10**9)) == (0, 0, [0, 1, 2, 3, 4, 5], [])


def _shared_prefix_seqs(vocab: int) -> list[tuple[list[int], list[int]]]:
    """Three questions of four samples under one long system prompt, and one unrelated sequence."""
    rng = random.Random(0)
    system = [rng.randrange(vocab) for _ in range(300)]
    seqs = []
    for _ in range(3):
        task = [rng.randrange(vocab) for _ in range(rng.randint(90, 140))]
        for _ in range(4):
            body = [rng.randrange(vocab) for _ in range(rng.randint(20, 90))]
            seqs.append(
                (system + task + body, [-1] * (len(system) + len(task)) + [rng.choice([-1, 0, 1]) for _ in body])
            )
    seqs.append(([rng.randrange(vocab) for _ in range(60)], [-1] * 10 + [0] * 50))
    return seqs


@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-4), ("bfloat16", 1e-2)])
def test_prefix_reuse_gives_the_nlls_of_whole_sequences(tiny_model_dir, dtype, tolerance) -> None:
    reuse = TransformersBackend(str(tiny_model_dir), dtype=dtype, batch_tokens=400)
    whole = TransformersBackend(str(tiny_model_dir), dtype=dtype, batch_tokens=400, prefix_reuse=False)
    seqs = _shared_prefix_seqs(reuse.model.config.vocab_size)
    assert len(plan_prefixes(seqs).children[0].children) == 3  # system prompt, then each task
    ran: list[int] = []
    got = reuse.nll(seqs, ran.append)
    alone = [supervised_nll(whole.engine, [s])[0] for s in seqs]  # batch 1, no prefix
    assert sum(ran) < 0.5 * sum(len(ids) for ids, _ in seqs)
    # the stock model (as on a GPU) gets the prefix joined to its keys by the cache instead
    stock = load_causal_lm(tiny_model_dir, "cpu", dtype, "score", fast=False)
    joined = [s.nll for s in score_sequences(stock, seqs, 400, prefix_reuse=True)]
    for a, b, c, d in zip(got, whole.nll(seqs), alone, joined):
        assert len(a) == len(c) and max(np.abs(x - c).max() for x in (a, b, d)) < tolerance
    reuse.check(seqs[0][0])


def test_the_check_stops_a_model_it_would_score_wrongly(tiny_model_dir, monkeypatch) -> None:
    import curate.score.nll

    backend = TransformersBackend(str(tiny_model_dir))
    ids = [(7 * i) % backend.model.config.vocab_size for i in range(3, 60)]
    backend.check(ids)
    forward = backend.model.forward

    def scaled(*args, **kwargs):  # logits scaled in the model's forward, as some architectures do
        out = forward(*args, **kwargs)
        out.logits = out.logits * 1.5
        return out

    monkeypatch.setattr(backend.model, "forward", scaled)
    name = type(backend.model).__name__
    with pytest.raises(
        RuntimeError,
        match=rf"^{name}: NLL from final hidden states through the output embeddings "
        r"differs from the model's own logits by \S+ at token \d+: \S+ against \S+; "
        r"curate score supports plain LM heads$",
    ):
        backend.check(ids)
    monkeypatch.setattr(backend.model, "forward", forward)
    joined = curate.score.nll.prefix_arguments

    def lost(model, prefix, record=False):  # the decoder's `prefix=` never reaches attention
        cache, extra = joined(model, prefix, record)
        extra.pop("prefix", None)
        return cache, extra

    monkeypatch.setattr(curate.score.nll, "prefix_arguments", lost)
    with pytest.raises(
        RuntimeError,
        match=rf"^{name}: scoring after a cached prefix differs from scoring the whole "
        r"sequence by \S+ at token (\d+): \S+ against \S+; run with --no-prefix-reuse$",
    ) as stopped:
        backend.check(ids)
    assert int(stopped.value.args[0].split(" at token ")[1].split(":")[0]) > len(ids) // 2  # a suffix token


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-6), (torch.bfloat16, 2e-2)])
def test_scoring_attention_is_causal_attention_after_a_prefix_and_within_each_packed_sequence(
    tiny_model_dir, dtype, tolerance
) -> None:
    gen = torch.Generator().manual_seed(0)
    query, key, value = (
        torch.randn(shape, generator=gen).to(dtype)
        for shape in ((2, 6, 37, 16), (2, 2, 37 + 50, 16), (2, 2, 37 + 50, 16))
    )
    module = SimpleNamespace(num_key_value_groups=3, is_causal=True, layer_idx=1)
    attention = AttentionInterface()[scoring_attention()]
    prefix = [None, (key[:1, :, :50], value[:1, :, :50])]  # layer 1's prefix, batch 1, read by every row
    out, _ = attention(module, query, key[:, :, 50:], value[:, :, 50:], None, scaling=0.25, prefix=prefix)
    # every query sees the 50 prefix positions, then the queries up to itself
    mask = torch.ones(37, 87, dtype=torch.bool).tril(50)
    joined = [torch.cat([x[:1, :, :50].expand(2, -1, -1, -1), x[:, :, 50:]], dim=2) for x in (key, value)]
    want = torch.nn.functional.scaled_dot_product_attention(
        query, joined[0].repeat_interleave(3, 1), joined[1].repeat_interleave(3, 1), attn_mask=mask, scale=0.25
    )
    assert out.dtype == dtype and out.shape == (2, 37, 6, 16)
    assert (out.transpose(1, 2).float() - want.float()).abs().max() < tolerance
    whole, _ = attention(module, query, key[:, :, 50:], value[:, :, 50:], None, scaling=0.25)  # no prefix: plain causal
    plain = torch.nn.functional.scaled_dot_product_attention(
        query,
        key[:, :, 50:].repeat_interleave(3, 1),
        value[:, :, 50:].repeat_interleave(3, 1),
        is_causal=True,
        scale=0.25,
    )
    assert torch.equal(whole.transpose(1, 2), plain)
    # a packed row of sequences 0-9, 10-29, 30-36: each sees the prefix (if any), then itself causally
    for given in (prefix, None):
        packed, _ = attention(
            module,
            query[:1],
            key[:1, :, 50:],
            value[:1, :, 50:],
            None,
            scaling=0.25,
            prefix=given,
            segments=[10, 20, 7],
        )
        seen = torch.zeros(37, 87, dtype=torch.bool)
        seen[:, :50] = given is not None
        for a, b in ((0, 10), (10, 30), (30, 37)):
            seen[a:b, 50 + a : 50 + b] = torch.ones(b - a, b - a, dtype=torch.bool).tril()
        want = torch.nn.functional.scaled_dot_product_attention(
            query[:1], key[:1].repeat_interleave(3, 1), value[:1].repeat_interleave(3, 1), attn_mask=seen, scale=0.25
        )
        assert packed.shape == (1, 37, 6, 16)
        assert (packed.transpose(1, 2).float() - want.float()).abs().max() < tolerance
    # on a CPU both prefix reuse and packed batches run on it, with reuse or without; --pack keeps reuse
    for reuse, pack in ((True, False), (False, False), (True, True)):
        backend = TransformersBackend(str(tiny_model_dir), prefix_reuse=reuse, pack=pack)
        assert backend.model.config._attn_implementation == scoring_attention() and backend.prefix_reuse == reuse


def test_scores_with_prefix_reuse_match_the_per_turn_reference(
    tmp_path, tiny_model_dir, tiny_model, tiny_tokenizer
) -> None:
    rows = agent_rows(24, seed=11, long_every=1000)
    ids = make_store(tmp_path / "s.duckdb", rows)
    result = score(ScoreConfig(db=str(tmp_path / "s.duckdb"), student=str(tiny_model_dir), progress=False))
    assert result.prefix_reuse == "on"
    system_tokens = len(tiny_tokenizer(SYSTEM)["input_ids"])
    assert result.forwarded < result.tokens - 20 * system_tokens
    got = stored_turns(tmp_path / "s.duckdb", result.run_id)
    for tid, row in zip(ids, rows):
        want = reference_turns(tiny_model, tiny_tokenizer, chat_messages(row["messages"]), 10**6)
        assert {m: v[0] for m, v in got[tid].items()} == {m: n for m, (n, _) in want.items()}
        assert [got[tid][m][2] for m in want] == pytest.approx([s / n for n, s in want.values()], abs=1e-4)


def _with_repeats(rows: list[dict]) -> list[dict]:
    """Every question gets a copy of its first sample as its last; question 'pair' holds only a
    repeated sample, so every policy faces a tie."""
    out = []
    for q in dict.fromkeys(r["question_id"] for r in rows):
        samples = [r for r in rows if r["question_id"] == q]
        out += samples + [dict(samples[0])]
    return out + [{**rows[1], "question_id": "pair"}, {**rows[1], "question_id": "pair"}]


def _nll(db, run_id) -> dict[str, float]:
    with Store(db, read_only=True) as store:
        return dict(store.sql("SELECT trajectory_id, nll FROM trajectory_nll WHERE run_id = $r", r=run_id).rows())


@pytest.mark.parametrize(
    "settings", [{"part_size": 1, "batch_tokens": 256}, {"part_size": 256}, {"part_size": 2, "prefix_reuse": False}]
)
def test_identical_samples_tie_exactly_and_the_earlier_wins(tmp_path, tiny_model_dir, settings) -> None:
    rows = _with_repeats(agent_rows(9, seed=4, long_every=1000))
    store = new_store(tmp_path / "s.duckdb")
    ids = add_trajectories(store, rows) + add_trajectories(store, [{**r, "dataset": "again"} for r in rows])
    store.close()
    # one data set, then the other: the second's copies take the numbers already in the store
    for dataset in ("ds", "again"):
        result = score(
            ScoreConfig(
                db=str(tmp_path / "s.duckdb"), student=str(tiny_model_dir), dataset=dataset, progress=False, **settings
            )
        )
    run_id = result.run_id
    nll = _nll(tmp_path / "s.duckdb", run_id)
    half = len(rows)
    for i, row in enumerate(rows):
        twin = next(j for j, r in enumerate(rows) if r["messages"] == row["messages"])
        assert nll[ids[i]] == nll[ids[twin]] == nll[ids[half + i]]  # bit for bit
    # repeats met within one part: with parts of 2, only the 'pair' question's second sample
    assert result.repeats == {1: 0, 2: 1, 256: 5}[settings["part_size"]]
    with Store(tmp_path / "s.duckdb") as store:
        for policy in ("min_nll", "max_nll", "median_nll"):
            chosen = run_policy(store.con, policy, run_id, dataset="ds")
            pair = chosen.filter(chosen["question_id"] == "pair")
            assert pair["trajectory_id"].to_list() == ["ds:pair:0"], policy


def test_selection_analysis_and_stats_report_trajectories_cut_to_nothing(tmp_path, tiny_model_dir, capsys) -> None:
    long_task = {
        "question_id": "long",
        "messages": [("system", SYSTEM), ("user", "New task:\n" + "why " * 400), ("assistant", "Thought: because.")],
    }
    short = {"question_id": "short", "messages": [("user", "2+2?"), ("assistant", "4")]}
    ids = make_store(tmp_path / "s.duckdb", [long_task, short])
    run_id = score(
        ScoreConfig(db=str(tmp_path / "s.duckdb"), student=str(tiny_model_dir), max_length=300, progress=False)
    ).run_id
    with Store(tmp_path / "s.duckdb") as store:
        view = store.sql("SELECT trajectory_id, nll, turns, tokens, truncated FROM trajectory_nll ORDER BY 1")
        chosen = run_policy(store.con, "min_nll", run_id)
    assert view.rows()[0] == (ids[0], None, 0, 0, True) and view["nll"][1] is not None
    reasons = dict(zip(chosen["question_id"], chosen["reason"]))
    assert reasons["long"] == "clean trajectories truncated: no turn within the run's max_length"
    assert main(["analyze", "--db", str(tmp_path / "s.duckdb"), "--run", run_id, "--rule", "rank"]) == 0
    assert (
        "ds: 1 scored trajectories have no NLL and are in no bucket (1 truncated to no turn within the "
        "run's max_length, the rest have no assistant turn)"
    ) in capsys.readouterr().out
    with Store(tmp_path / "s.duckdb", read_only=True) as store:
        summary = run_summary(store)
    assert summary.select("trajectories", "truncated", "no_turn_left", "turn_by_turn").row(0) == (2, 1, 1, 0)
