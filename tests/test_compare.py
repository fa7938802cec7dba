"""`curate compare`: stored selections and policies run on the spot, side by side, against a
plain-Python computation over the synthetic store of test_select (choices, agreement, correctness,
NLL tertiles, mean scores); golden rows on a hand-made store; the CLI."""

from __future__ import annotations

import json
import math

import pytest
from factory import add_scores, add_trajectories, new_store
from test_select import build, reference, synthetic_samples

from curate.cli import main
from curate.compare import CompareConfig, compare
from curate.select import SelectConfig, select
from curate.store import Store

POLICIES = ("min_nll", "min_rsr", "max_ifd", "random")


@pytest.fixture(scope="module")
def synthetic():
    samples, asked = synthetic_samples()
    store = new_store()
    build(store, samples, asked)
    yield store, samples, asked
    store.close()


def tertile(samples, run: str, x, scope: str) -> int:
    """The quantile rule of sql/analysis/macros.sql: thresholds at order statistics floor((n-1)q)+1."""
    group = [y for y in samples if run in y.scores and (scope == "global" or y.question_id == x.question_id)]
    nlls = sorted(y.nll(run) for y in group if y.dataset == x.dataset)
    t1, t2 = nlls[(len(nlls) - 1) // 3], nlls[2 * (len(nlls) - 1) // 3]
    return 0 if x.nll(run) <= t1 else 1 if x.nll(run) <= t2 else 2


def expected(samples, asked, policies, run: str, pool_all: bool, scope: str) -> list[dict]:
    """compare's rows, computed from the DESIGN rules."""
    by_id = {x.tid: x for x in samples}
    picks = {p: reference(samples, asked, p, run, pool_all=pool_all) for p in policies}
    rows = []
    for p in policies:
        chosen = [by_id[r[2]] for r in picks[p] if r[2]]
        buckets = [tertile(samples, run, x, scope) for x in chosen]
        row = {
            "entry": p,
            "questions": len(picks[p]),
            "selected": len(chosen),
            "correct_pct": 100 * sum(x.correct for x in chosen) / len(chosen),
            **{f"{b}_pct": 100 * buckets.count(i) / len(chosen) for i, b in enumerate(("easy", "medium", "hard"))},
            "mean_nll": sum(x.nll(run) for x in chosen) / len(chosen),
            "mean_assistant_chars": sum(len(x.text) for x in chosen) / len(chosen),
        }
        rsr = [x.rsr(run) for x in chosen if x.rsr(run) is not None]
        ifd = [x.ifd(run)[0] for x in chosen if x.ifd(run) is not None]
        row["mean_rsr"] = sum(rsr) / len(rsr) if rsr else None
        row["mean_ifd"] = sum(ifd) / len(ifd) if ifd else None
        for other in policies:
            row[f"same as {other}"] = sum(1 for a, b in zip(picks[p], picks[other]) if a[2] and a[2] == b[2])
        rows.append(row)
    return rows


@pytest.mark.parametrize(("pool_all", "scope"), [(False, "per_question"), (True, "per_question"), (True, "global")])
def test_policies_side_by_side_match_python(synthetic, pool_all, scope) -> None:
    store, samples, asked = synthetic
    config = CompareConfig(policies=POLICIES, run="r1", pool="all" if pool_all else "clean", scope=scope)
    got = compare(store.con, config).to_dicts()
    want = expected(samples, asked, POLICIES, "r1", pool_all, scope)
    assert [r["entry"] for r in got] == list(POLICIES) and {r["run_id"] for r in got} == {"r1"}
    for row, ref in zip(got, want):
        for key, value in ref.items():
            assert row[key] == (pytest.approx(value) if isinstance(value, float) else value), (row["entry"], key)
    if pool_all:  # before grading a score can pick a wrong run; among clean ones it cannot
        assert min(r["correct_pct"] for r in got) < 100
    else:
        assert {r["correct_pct"] for r in got} == {100.0}
    # the pool switch is the comparison's own: a policy run afterwards chooses among clean samples again
    assert store.sql("SELECT getvariable('selection_pool') AS p").item() is None


def test_stored_selections_and_policies_together(synthetic) -> None:
    store, samples, asked = synthetic
    select(store, SelectConfig(policy="max_nll", run="r1", name="hardest"))
    got = compare(store.con, CompareConfig(selections=("hardest",), policies=("min_nll",), run="r1"))
    hi, lo = reference(samples, asked, "max_nll", "r1"), reference(samples, asked, "min_nll", "r1")
    same = sum(1 for a, b in zip(hi, lo) if a[2] and a[2] == b[2])
    assert got.columns[-2:] == ["same as hardest", "same as min_nll"]
    assert got.select("entry", "policy", "same as hardest", "same as min_nll").rows() == [
        ("hardest", "max_nll", sum(1 for r in hi if r[2]), same),
        ("min_nll", "min_nll", same, sum(1 for r in lo if r[2])),
    ]
    with pytest.raises(ValueError, match="'min_nll' given more than once"):
        compare(store.con, CompareConfig(policies=("min_nll", "min_nll"), run="r1"))
    with pytest.raises(ValueError, match="no selection 'nope' in this store"):
        compare(store.con, CompareConfig(selections=("nope",)))
    with pytest.raises(ValueError, match="nothing to compare"):
        CompareConfig()
    with pytest.raises(ValueError, match="--pool 'some': expected one of clean, all"):
        CompareConfig(policies=("min_nll",), pool="some")


def test_golden_rows() -> None:
    store = new_store()
    ids = add_trajectories(
        store,
        [
            {"question_id": "a", "correct": False},  # the lowest NLL, wrong
            {"question_id": "a"},
            {"question_id": "a"},
            {"question_id": "b"},
        ],
    )
    add_scores(
        store,
        "run",
        dict(zip(ids, [[0.5], [1.0], [2.0], [1.0]])),
        rank_sums=dict(zip(ids, [[9], [30], [20], [10]])),  # RSR 1.8, 3.0, 1.0, 1.0
        alone_means=dict(zip(ids, [[0.5], [1.5], [2.5], [1.0]])),  # IFD 1 (flagged), e^-0.5, e^-0.5, 1 (flagged)
    )
    got = compare(store.con, CompareConfig(policies=("min_nll", "min_rsr", "max_ifd"), run="run"))
    assert got.select("entry", "selected", "correct_pct", "easy_pct", "medium_pct", "hard_pct").rows() == [
        # a: ds:a:1 is the median of a's three NLLs (MEDIUM); b: its single trajectory is EASY
        ("min_nll", 2, 100.0, 50.0, 50.0, 0.0),
        ("min_rsr", 2, 100.0, 50.0, 0.0, 50.0),  # a: ds:a:2 (RSR 1.0, HARD)
        ("max_ifd", 2, 100.0, 50.0, 50.0, 0.0),  # a: e^-0.5 ties, the earlier sample ds:a:1
    ]
    assert got["mean_rsr"].to_list() == pytest.approx([2.0, 1.0, 2.0])
    assert got["mean_ifd"].to_list() == pytest.approx([(math.exp(-0.5) + 1) / 2] * 3)
    assert got.select("same as min_nll", "same as min_rsr", "same as max_ifd").rows() == [
        (2, 1, 2),
        (1, 2, 1),
        (2, 1, 2),
    ]
    ungraded = compare(store.con, CompareConfig(policies=("min_nll",), run="run", pool="all"))
    assert ungraded.select("selected", "correct_pct", "easy_pct").row(0) == (2, 50.0, 100.0)  # ds:a:0, wrong


def test_cli_compares_policies_on_the_spot(tmp_path, capsys) -> None:
    samples, asked = synthetic_samples()
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        build(store, samples, asked)
    args = ["compare", "--db", str(db), "--run", "r1", "--policy", "min_nll", "--policy", "random", "--seed", "3"]
    assert main([*args, "--pool", "all", "--tertiles", "global", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    want = expected(samples, asked, ("min_nll",), "r1", True, "global")[0]
    assert [r["entry"] for r in rows] == ["min_nll", "random"]
    assert rows[0]["hard_pct"] == pytest.approx(want["hard_pct"])
    assert main([*args, "--rule", "rank"]) == 0
    assert "same as random" in capsys.readouterr().out
    assert main(["compare", "--db", str(db)]) == 2
    assert "nothing to compare" in capsys.readouterr().err
