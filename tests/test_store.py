"""The store: schema creation, version check, the trajectory NLL view, transactions."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import duckdb
import pytest
from factory import add_scores, add_trajectories

from curate.store import SchemaVersionError, Store, StoreLockedError

# A DuckDB client (a reader, or with read_only=False a writer) holding the store until its stdin closes.
HOLDER = (
    "import sys, duckdb; con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'reader'); "
    "print('open', flush=True); sys.stdin.read(); con.close()"
)


def test_trajectory_nll_is_macro_average(tmp_path) -> None:
    store = Store(tmp_path / "s.duckdb")
    a, b = add_trajectories(store, [{"question_id": "q1"}, {"question_id": "q1"}])
    add_scores(store, "r1", {a: [1.0, 3.0, 8.0], b: [2.0]}, truncated=[b])
    nll = store.sql("SELECT trajectory_id, nll, turns, truncated FROM trajectory_nll ORDER BY 1")
    assert nll.rows() == [(a, 4.0, 3, False), (b, 2.0, 1, True)]
    assert store.sql("SELECT sample_idx FROM trajectories ORDER BY 1")["sample_idx"].to_list() == [0, 1]


def test_reopen_read_only(tmp_path) -> None:
    Store(tmp_path / "s.duckdb").close()
    with Store(tmp_path / "s.duckdb", read_only=True) as store:
        assert store.sql("SELECT value FROM meta WHERE key = 'schema_version'").item() == "3"


def _set_version(path, value: str) -> None:
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = $v WHERE key = 'schema_version'", {"v": value})
    con.close()


def test_unknown_schema_version_is_named(tmp_path) -> None:
    path = tmp_path / "old.duckdb"
    Store(path).close()
    _set_version(path, "0")
    with pytest.raises(SchemaVersionError, match="store has schema version 0, this curate reads version 3; re-ingest"):
        Store(path)
    _set_version(path, "one")
    with pytest.raises(SchemaVersionError, match="meta.schema_version is 'one', not a version number"):
        Store(path)


def test_version_1_store_is_upgraded_in_place_when_opened_for_writing(tmp_path) -> None:
    path = tmp_path / "v1.duckdb"
    with Store(path) as store:
        (a,) = add_trajectories(store, [{"question_id": "q1"}])
    _set_version(path, "1")
    with pytest.raises(
        SchemaVersionError, match="schema version 1, this curate reads version 3; open it once for writing"
    ):
        Store(path, read_only=True)
    with Store(path) as store:
        assert store.sql("SELECT trajectory_id FROM trajectories").item() == a
    with Store(path, read_only=True) as store:
        assert store.sql("SELECT value FROM meta WHERE key = 'schema_version'").item() == "3"


def test_version_2_store_gains_ranks_and_ifd_when_opened_for_writing(tmp_path) -> None:
    path = tmp_path / "v2.duckdb"
    with Store(path) as store:
        (a,) = add_trajectories(store, [{"question_id": "q1"}])
        add_scores(store, "r1", {a: [1.0, 3.0]})
    con = duckdb.connect(str(path))  # a store as schema 2 left it: no rank columns, no alone table or views
    for name in ("trajectory_ifd", "turn_ifd", "trajectory_rsr"):
        con.execute(f"DROP VIEW {name}")
    con.execute("DROP TABLE turn_alone_scores")
    con.execute("ALTER TABLE turn_scores DROP COLUMN rank_clip")
    con.execute("ALTER TABLE turn_scores DROP COLUMN rank_sum")
    con.close()
    _set_version(path, "2")
    with pytest.raises(
        SchemaVersionError, match="schema version 2, this curate reads version 3; open it once for writing"
    ):
        Store(path, read_only=True)
    Store(path).close()
    with Store(path, read_only=True) as store:
        assert store.sql("SELECT nll_mean, rank_sum FROM turn_scores ORDER BY turn").rows() == [
            (1.0, None),
            (3.0, None),
        ]
        assert store.sql("SELECT trajectory_id, rsr FROM trajectory_rsr").rows() == [(a, None)]
        assert store.sql("SELECT count(*) FROM trajectory_ifd").item() == 0


def test_foreign_database_is_refused(tmp_path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    with pytest.raises(SchemaVersionError, match="no schema version"):
        Store(path)


def test_failed_transaction_leaves_nothing(tmp_path) -> None:
    store = Store(tmp_path / "s.duckdb")
    with pytest.raises(RuntimeError):
        with store.transaction() as con:
            con.execute("INSERT INTO meta VALUES ('x', 'y')")
            raise RuntimeError("interrupted")
    assert store.sql("SELECT count(*) AS n FROM meta WHERE key = 'x'").item() == 0


def _hold(path, kind: str) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline() == "open\n"
    return holder


@pytest.mark.parametrize("kind", ["reader", "writer"])
def test_a_write_waits_for_another_process_to_close_the_store(tmp_path, capsys, kind) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).close()
    holder = _hold(path, kind)
    threading.Timer(2.5, holder.communicate, [""]).start()  # the holder closes the store 2.5 s from now
    started = time.monotonic()
    with Store(path) as store:  # a writer
        store.sql("CREATE TABLE written AS SELECT 1 AS x")
    assert holder.wait() == 0 and 2.0 < time.monotonic() - started < 30
    assert capsys.readouterr().err == (
        f"curate: {path}: a {kind} (PID {holder.pid}) has this store open; waiting up to 30 s for it\n"
    )
    with Store(path, read_only=True) as store:
        assert store.sql("SELECT x FROM written").item() == 1


def test_a_reader_holding_the_store_past_the_wait_is_named_as_a_reader(tmp_path, monkeypatch) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).close()
    monkeypatch.setenv("CURATE_LOCK_WAIT_S", "1.5")
    holder = _hold(path, "reader")
    try:
        with pytest.raises(StoreLockedError) as refused:
            Store(path)
        with Store(path, read_only=True):  # readers share the store
            pass
    finally:
        holder.communicate("")
    assert str(refused.value) == (
        f"{path}: another process (PID {holder.pid}) has this store open read-only, and writing needs it alone; "
        "waited 1.5 s; close that reader (a DuckDB client, a curate sql still running), then run the same "
        "command again"
    )
