"""One line naming the file and what to do, for each failure once seen as a traceback: DuckDB errors of
`curate sql`, a --db that is no store, a store locked by another writer, unreadable and in-the-way
files, and a full disk; --debug shows the traceback instead."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from factory import add_scores

from curate.cli import main
from curate.store import Store

SMALL_RUNS = Path(__file__).parents[1] / "data" / "bad" / "score_yes.jsonl"  # 2 trajectories and a reject


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding two ingested trajectories, scored in run `run1`."""
    path = tmp_path_factory.mktemp("errors") / "s.duckdb"
    assert main(["ingest", str(SMALL_RUNS), "--db", str(path), "--dataset", "d", "--quiet"]) == 0
    with Store(path) as store:
        turns = store.sql("SELECT trajectory_id, assistant_turns FROM trajectories").rows()
        add_scores(store, "run1", {t: [1.0] * n for t, n in turns})
    return path


def error_of(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run curate in-process; the single stderr line of its failure (exit 2), without the prefix."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    prefix = f"curate {argv[0]}: error: "
    assert err.startswith(prefix), err
    return err[len(prefix) : -1]


def test_sql_errors_are_one_line_with_what_to_do(db: Path, capsys) -> None:
    def sql(*argv: str) -> str:
        return error_of(capsys, ["sql", "--db", str(db), *argv])

    assert sql("selec 1") == f'{db}: Parser Error: syntax error at or near "selec"; check the SQL'
    unknown = sql("SELECT * FROM nope")
    assert unknown.startswith(f"{db}: Catalog Error: Table with name nope does not exist!")
    assert unknown.endswith('; list the tables with: curate sql "SHOW TABLES"')
    assert sql("SELECT $x") == (
        f"{db}: Invalid Input Error: Values were not provided for the following "
        "parameters: x; bind each parameter with --param NAME=VALUE"
    )
    assert sql("SELECT $x", "--param", "x=1", "--param", "y=2") == (
        f"{db}: Invalid Input Error: Parameter argument/count mismatch, identifiers of the excess parameters: y; "
        "drop that --param or use $NAME for it in the SQL"
    )
    assert sql("SELECT 1", "--param", "y=1") == (
        f"{db}: Binder Error: Parameter/argument count mismatch for prepared statement. Expected 0, got 1; "
        "the SQL uses no $NAME parameter: drop the --param options"
    )
    assert sql("DELETE FROM trajectories") == (
        f'{db}: Invalid Input Error: Cannot execute statement of type "DELETE" on database "s" which is attached '
        "in read-only mode!; this command opened the store read-only (curate sql: add --write to change it)"
    )
    assert sql("SELECT 'a'::INTEGER") == f"{db}: Conversion Error: Could not convert string 'a' to INT32"
    with Store(db, read_only=True) as store:
        assert store.sql("SELECT count(*) FROM trajectories").item() == 2
    with pytest.raises(Exception, match="syntax error"):
        main(["sql", "--db", str(db), "selec 1", "--debug"])


def not_stores(folder: Path) -> dict[str, Path]:
    """Paths that are not a store, by kind."""
    (folder / "notes.txt").write_text("not a store\n")
    (folder / "empty.duckdb").write_bytes(b"")
    (folder / "a-folder").mkdir()
    with sqlite3.connect(folder / "app.sqlite") as con:
        con.execute("CREATE TABLE t (x)")
    return {
        "text": folder / "notes.txt",
        "empty": folder / "empty.duckdb",
        "folder": folder / "a-folder",
        "sqlite": folder / "app.sqlite",
        "missing folder": folder / "nowhere" / "s.duckdb",
    }


EXPECTED = {
    "text": "{p}: not a DuckDB store; give --db a store curate wrote, or a new file name",
    "empty": "{p}: an empty file, not a DuckDB store; remove it or give --db another path",
    "folder": "{p}: a folder, not a store file; give --db a file, e.g. {p}/curate.duckdb",
    "sqlite": "{p}: a SQLite database, not a DuckDB store; give --db a store curate wrote",
    "missing folder": "{p}: folder {p.parent} does not exist; create it or give --db another path",
}


@pytest.mark.parametrize(
    "argv",
    [
        ["ingest", str(SMALL_RUNS), "--dataset", "d", "--quiet"],
        ["stats"],
        ["sql", "SELECT 1"],
        ["sql", "SELECT 1", "--write"],
    ],
)
def test_a_db_that_is_no_store_is_named(argv: list[str], tmp_path: Path, capsys) -> None:
    for kind, path in not_stores(tmp_path).items():
        if kind == "missing folder" and "--write" not in argv and argv[0] != "ingest":
            want = f"{path}: no store here (create one with `curate ingest`)"
        else:
            want = EXPECTED[kind].format(p=path)
        assert error_of(capsys, [*argv, "--db", str(path)]) == want, kind
    assert (tmp_path / "notes.txt").read_text() == "not a store\n"
    assert (tmp_path / "empty.duckdb").read_bytes() == b"" and not (tmp_path / "nowhere").exists()


def test_stores_open_without_extension_autoloading() -> None:
    with Store(":memory:") as store:
        settings = store.sql(
            "SELECT current_setting('autoinstall_known_extensions') AS i,"
            " current_setting('autoload_known_extensions') AS l"
        ).row(0)
    assert settings == (False, False)


def test_a_second_writer_is_told_who_holds_the_store(db: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("CURATE_LOCK_WAIT_S", "0.5")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from curate.store import Store; s = Store(sys.argv[1]); print('open', "
            "flush=True); sys.stdin.read()",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "open\n"
        message = error_of(capsys, ["ingest", str(SMALL_RUNS), "--db", str(db), "--dataset", "e", "--quiet"])
        assert message == (
            f"{db}: another process (PID {holder.pid}) has this store open for writing; waited "
            "0.5 s; wait for it to finish (one writer at a time), then run the same command again"
        )
    finally:
        holder.communicate("")
    assert main(["stats", "--db", str(db)]) == 0


@contextmanager
def without_rights(path: Path, mode: int):
    """`path` chmod-ed to `mode` for this process, which gives up root's override while inside."""
    before = path.stat().st_mode & 0o777
    path.chmod(mode)
    if os.geteuid() == 0:
        os.seteuid(65534)
    try:
        yield path
    finally:
        if os.getuid() == 0:
            os.seteuid(0)
        path.chmod(before)


def test_unreadable_unwritable_and_in_the_way_files_are_named(db: Path, tmp_path: Path, capsys) -> None:
    import curate.cli.query  # noqa: F401  imported before this process gives up its rights
    import curate.queries  # noqa: F401

    # A folder anyone may enter, so that only the permissions set here are in the way.
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)
    try:
        query = folder / "q.sql"
        query.write_text("SELECT 1")
        with without_rights(query, 0):
            assert error_of(capsys, ["sql", "--file", str(query), "--db", str(db)]) == (
                f"{query}: Permission denied; check its permissions (and its folder's), or use another path"
            )
        new = folder / "new.duckdb"
        with without_rights(folder, 0o555):
            assert error_of(capsys, ["ingest", str(SMALL_RUNS), "--db", str(new), "--dataset", "d", "--quiet"]) == (
                f'{new}: cannot open the store for writing (IO Error: Cannot open file "{new}": Permission denied); '
                "check the file and its folder's permissions, or give --db another path"
            )
        assert not new.exists()
    finally:
        shutil.rmtree(folder)
    blocker = tmp_path / "taken"
    blocker.write_text("a file where a folder should be")
    argv = ["export", "--db", str(db), "--policy", "first", "--run", "run1", "--to", str(blocker / "x.parquet")]
    assert error_of(capsys, argv) == f"{blocker}: File exists; remove it or choose another path"


FULL_DISK = r"""
set -u
mount -t tmpfs -o size=16m tmpfs "$FULL"
cp "$STORE" "$FULL/s.duckdb"
dd if=/dev/zero of="$FULL/filler" bs=64k 2>/dev/null   # the file system is now full
run() { name=$1; shift; "$CURATE" "$@" >/dev/null 2>"$OUT/$name.err"; echo $? >"$OUT/$name.rc"; }
run score score --db "$FULL/s.duckdb" --student tiny --no-progress
run parquet export --db "$STORE" --policy first --run run1 --to "$FULL/x.parquet"
run folder export --db "$STORE" --policy first --run run1 --to "$FULL/x"
ls -A "$FULL" >"$OUT/left"
rm "$FULL/filler"
run resumed score --db "$FULL/s.duckdb" --student tiny --no-progress
cp "$FULL/s.duckdb" "$OUT/after.duckdb"
"""


def test_a_full_disk_is_one_line_and_the_store_resumes(db: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs `unshare -rm` (user and mount namespaces) to mount a small file system")
    (tmp_path / "full").mkdir()
    cache = tmp_path / "cache"
    shutil.copytree(tiny_model_dir, cache / "tiny")  # the built-in `tiny`, already built
    env = {
        **os.environ,
        "FULL": str(tmp_path / "full"),
        "STORE": str(db),
        "OUT": str(tmp_path),
        "CURATE": str(Path(sys.executable).with_name("curate")),
        "CURATE_CACHE": str(cache),
    }
    subprocess.run(["unshare", "-rm", "sh", "-c", FULL_DISK], env=env, check=True, timeout=600)

    def outcome(name: str) -> tuple[int, str]:
        lines = (tmp_path / f"{name}.err").read_text().splitlines()
        assert not any("Traceback" in line for line in lines), lines
        return int((tmp_path / f"{name}.rc").read_text()), lines[-1] if lines else ""

    full = tmp_path / "full"
    tail = (
        "no space left on the device; free some space or write elsewhere, then run the same command again "
        "(what was being written is not kept half-done)"
    )
    assert outcome("score") == (2, f"curate score: error: {full / 's.duckdb'}: {tail}")
    assert outcome("parquet") == (2, f"curate export: error: {full / 'x.parquet'}: {tail}")
    assert outcome("folder") == (2, f"curate export: error: {full / 'x'}: {tail}")
    # Nothing half-written by the exports; the store and its parts folder stay for the resume.
    assert set((tmp_path / "left").read_text().split()) <= {"filler", "s.duckdb", "s.duckdb.wal", "s.duckdb.parts"}
    assert outcome("resumed")[0] == 0
    with Store(tmp_path / "after.duckdb", read_only=True) as store:
        scored = store.sql(
            "SELECT run_id, count(*) FROM trajectory_scores JOIN scoring_runs USING (run_id)"
            " WHERE student = 'tiny' AND run_id <> 'run1' AND finished_at IS NOT NULL GROUP BY 1"
        )
    assert scored.height == 1 and scored.item(0, 1) == 2  # one finished run, both trajectories scored
