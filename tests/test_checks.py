"""The sql/checks/ audits: silent on a store made by every policy, and each one catches its fault."""

from __future__ import annotations

import pytest
from factory import add_scores, add_trajectories, new_store

from curate import queries
from curate.select import SelectConfig, audit, builtin_policies, select


@pytest.fixture
def store():
    store = new_store()
    ids = add_trajectories(
        store,
        [
            {"question_id": "a"},
            {"question_id": "a"},
            {"question_id": "a", "correct": False},
            {"question_id": "b"},
            {"question_id": "b", "parse_error": True},
            {"question_id": "c", "max_steps": True},
        ],
    )
    add_scores(
        store,
        "r",
        {t: [1.0 + i / 4] for i, t in enumerate(ids)},
        rank_sums={t: [10 + i] for i, t in enumerate(ids)},
        alone_means={t: [1.0 + i / 8] for i, t in enumerate(ids)},
    )
    for policy in builtin_policies():
        select(store, SelectConfig(policy=policy, run="r", k=2))
    yield store
    store.close()


def test_checks_are_silent_on_real_selections(store) -> None:
    assert len(queries.sql_names("checks")) == 6
    assert store.sql("SELECT count(*) AS n FROM selections").item() == len(builtin_policies()) == 8
    assert audit(store.con).is_empty()


@pytest.mark.parametrize(
    ("check", "fault", "problem"),
    [
        (
            "selection_row_not_clean",
            "UPDATE selection_rows SET trajectory_id = 'ds:a:2', nll = 1.5 WHERE question_id = 'a'",
            "chosen trajectory is not clean",
        ),
        (
            "selection_row_wrong_question",
            "UPDATE selection_rows SET trajectory_id = 'ds:b:0', nll = 1.75 WHERE question_id = 'a'",
            "chosen trajectory answers another question",
        ),
        (
            "selection_row_wrong_question",
            "UPDATE selection_rows SET trajectory_id = 'gone' WHERE question_id = 'a'",
            "chosen trajectory is not in the store",
        ),
        ("selection_row_outside_k", "UPDATE selections SET k = 1", "chosen sample_idx 1 is not below k = 1"),
        (
            "selection_row_wrong_nll",
            "UPDATE selection_rows SET nll = 9 WHERE question_id = 'b'",
            "stored nll 9.0 differs from the run's 1.75",
        ),
        (
            "selection_row_wrong_nll",
            "UPDATE selections SET run_id = 'other'",
            "chosen trajectory is not scored in the selection's run",
        ),
        (
            "selection_row_bad_counts",
            "UPDATE selection_rows SET rank = 3 WHERE question_id = 'a'",
            "rank 3 of 2 candidates",
        ),
        (
            "selection_row_bad_counts",
            "UPDATE selection_rows SET nll = 1 WHERE trajectory_id IS NULL",
            "no trajectory but an nll or rank",
        ),
        ("selection_rows_orphaned", "DELETE FROM selections WHERE policy = 'min_nll'", "row of an unknown selection"),
    ],
)
def test_each_check_catches_its_fault(store, check, fault, problem) -> None:
    store.con.execute(fault)
    found = audit(store.con).filter(check=check)
    assert not found.is_empty()
    assert problem in found["problem"].to_list()


def test_audit_of_one_selection_ignores_the_others(store) -> None:
    store.con.execute("UPDATE selection_rows SET nll = 9 WHERE selection_id = 'first:r:k2' AND question_id = 'a'")
    assert audit(store.con, "min_nll:r:k2").is_empty()
    assert (
        audit(store.con, "first:r:k2").rows()
        == audit(store.con).rows()
        == [
            ("selection_row_wrong_nll", "first:r:k2", "ds", "a", "ds:a:0", "stored nll 9.0 differs from the run's 1.0"),
        ]
    )
