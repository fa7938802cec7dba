"""Inputs and faults that once broke ingest: piped input, cut .zst files, deep JSON, a byte order
mark, retrying rejects, a full disk, and the errors a user sees for a file that cannot be read."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
import zstandard
from test_ingest import RUNS, record, write_jsonl

from curate.cli import main
from curate.ingest import IngestOptions, ingest
from curate.store import Store

QUIET = IngestOptions(progress=False)
BAD = Path(__file__).parents[1] / "data" / "bad"
TABLES = ("questions", "trajectories", "messages", "failed_runs", "ingest_runs", "ingest_rejects")


def snapshot(store: Store) -> dict[str, list[tuple]]:
    """Every row of every ingest table."""
    return {t: store.sql(f"SELECT * FROM {t} ORDER BY ALL").rows() for t in TABLES}


def good_lines() -> list[bytes]:
    """Two good smolagents records (lines 1 and 3 of a bad-input file)."""
    lines = (BAD / "score_yes.jsonl").read_bytes().split(b"\n")
    return [lines[0], lines[2]]


def feed_fifo(fifo: Path, data: bytes) -> None:
    """Write data into a named pipe from a thread, as a shell pipe would, then go away."""
    os.mkfifo(fifo)

    def feed() -> None:
        fifo.write_bytes(data)
        # A reader that opens the pipe a second time would wait for a writer forever: end its wait
        # with an empty stream (what a second read of /dev/stdin gets), so the test fails, not hangs.
        for _ in range(100):
            time.sleep(0.1)
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass  # nobody is reading now

    threading.Thread(target=feed, daemon=True).start()


def test_piped_input_goes_in_once_and_blocks_nothing(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "runs.jsonl", [record(r) for r in RUNS])
    data = path.read_bytes()
    feed_fifo(tmp_path / "pipe", data)
    store = Store(tmp_path / "s.duckdb")
    (piped,) = ingest(store, [tmp_path / "pipe"], "demo", options=QUIET)
    assert (piped.records, piped.trajectories, piped.rejects) == (6, 6, 0)
    assert store.sql("SELECT file_hash, source_file FROM ingest_runs").row(0) == (
        hashlib.sha256(data).hexdigest(),
        str(tmp_path / "pipe"),
    )
    # The same bytes from the real file are the same file: nothing more goes in.
    (real,) = ingest(store, [path], "demo", options=QUIET)
    assert real.already_ingested
    assert store.sql("SELECT count(*) FROM trajectories").item() == 6
    assert not list(tmp_path.glob(".curate-spool-*"))  # the spool beside the store is gone


def test_cli_reads_standard_input_from_a_pipe(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "runs.jsonl", [record(r) for r in RUNS])
    db = tmp_path / "s.duckdb"
    cli = [str(Path(sys.executable).parent / "curate"), "ingest", "--db", str(db), "--dataset", "demo", "--quiet"]
    done = subprocess.run([*cli, "/dev/stdin"], input=path.read_bytes(), capture_output=True)
    assert done.returncode == 0, done.stderr
    assert b"6 records, 6 trajectories" in done.stdout
    again = subprocess.run([*cli, str(path)], capture_output=True, text=True)
    assert "already ingested into 'demo'" in again.stdout


def cut_zst(lines: list[bytes], keep: int, into_next: int) -> bytes:
    """A zstd frame of `lines` cut after `keep` whole lines plus `into_next` bytes of the next one."""
    out = zstandard.ZstdCompressor().compressobj()
    body = b"".join(line + b"\n" for line in lines)
    head = len(b"".join(line + b"\n" for line in lines[:keep])) + into_next
    first = out.compress(body[:head]) + out.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    out.compress(body[head:])
    return first  # the rest of the frame (and its end) is lost


@pytest.mark.parametrize("into_next", [0, 25], ids=["line-boundary", "mid-line"])
def test_cut_zst_is_one_reject_after_the_records_read(tmp_path: Path, into_next: int) -> None:
    lines = [json.dumps(record(RUNS[i % len(RUNS)])).encode() for i in range(40)]
    path = tmp_path / "runs.jsonl.zst"
    path.write_bytes(cut_zst(lines, 21, into_next))
    store = Store(tmp_path / "s.duckdb")
    (summary,) = ingest(store, [path], "d", options=QUIET)
    assert (summary.records, summary.trajectories, summary.rejects) == (22, 21, 1)
    line, reason = store.sql("SELECT source_line, reason FROM ingest_rejects").row(0)
    assert line == 22
    assert reason == ("file: compressed stream is corrupt or cut short after line 21 (zstd stream ends inside a frame)")


def test_whole_multi_frame_zst_reads_every_line(tmp_path: Path) -> None:
    lines = [json.dumps(record(r)).encode() + b"\n" for r in RUNS]
    compressor = zstandard.ZstdCompressor()
    path = tmp_path / "runs.jsonl.zst"
    path.write_bytes(compressor.compress(b"".join(lines[:2])) + compressor.compress(b"".join(lines[2:])))
    (summary,) = ingest(Store(tmp_path / "s.duckdb"), [path], "d", options=QUIET)
    assert (summary.records, summary.trajectories, summary.rejects) == (6, 6, 0)


@pytest.mark.parametrize("field", ["model_id", "true_answer", "generated_answer", "error"])
def test_deeply_nested_field_rejects_only_its_record(tmp_path: Path, field: str) -> None:
    first, last = good_lines()
    deep = json.loads(first)
    deep[field] = "NESTED"
    bad = json.dumps(deep).replace('"NESTED"', "[" * 300 + "1" + "]" * 300).encode()
    path = tmp_path / "deep.jsonl"
    path.write_bytes(b"\n".join([first, bad, last]) + b"\n")
    store = Store(tmp_path / "s.duckdb")
    (summary,) = ingest(store, [path], "d", options=QUIET)
    assert (summary.records, summary.trajectories, summary.rejects) == (3, 2, 1)
    assert store.sql("SELECT source_line, reason FROM ingest_rejects").row(0) == (
        2,
        f"{field}: nested too deeply to store as JSON text (over 254 levels)",
    )


def test_byte_order_mark_is_stripped(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(good_lines()) + b"\n")
    (summary,) = ingest(Store(tmp_path / "s.duckdb"), [path], "d", options=QUIET)
    assert (summary.format, summary.records, summary.trajectories, summary.rejects) == ("smolagents", 2, 2, 0)


def oversize_file(tmp_path: Path) -> Path:
    """Lines: good (q1), oversize (q1), bad JSON, good (q2); the oversize line is 3 kB."""
    first, last = good_lines()
    big = json.loads(first)
    big["log_data"]["messages"][-1]["content"] += "x" * 3000
    path = tmp_path / "runs.jsonl"
    path.write_bytes(b"\n".join([first, json.dumps(big).encode(), b"{not json", last]) + b"\n")
    return path


def test_retry_rejects_takes_in_what_a_new_limit_allows(tmp_path: Path) -> None:
    path = oversize_file(tmp_path)
    store = Store(tmp_path / "s.duckdb")
    (first,) = ingest(store, [path], "d", options=IngestOptions(max_record_bytes=2000, progress=False))
    assert (first.trajectories, first.rejects) == (2, 2)
    roomy = IngestOptions(max_record_bytes=1 << 20, progress=False)
    (plain,) = ingest(store, [path], "d", options=roomy)
    assert plain.already_ingested  # a plain re-ingest is still a no-op
    retry = IngestOptions(max_record_bytes=1 << 20, progress=False, retry_rejects=True)
    copy = tmp_path / "copy.jsonl"  # the same bytes under another name are the same file
    copy.write_bytes(path.read_bytes())
    (again,) = ingest(store, [copy], "d", options=retry)
    assert (again.retried, again.records, again.trajectories, again.rejects) == (True, 2, 1, 1)
    assert again.line().startswith(f"{copy}: retried 2 rejected records of ingest 1 in 'd': 1 trajectories,")
    assert store.sql("SELECT DISTINCT source_file FROM trajectories").rows() == [(str(path),)]
    # The retried record keeps the id a first ingest under the new limit gives it, and is the
    # question's next sample (sample_idx is ingest order; nothing already stored is renumbered).
    fresh = Store(tmp_path / "fresh.duckdb")
    ingest(fresh, [path], "d", options=roomy)
    query = "SELECT trajectory_id, source_line, content_hash FROM trajectories ORDER BY source_line"
    assert store.sql(query).rows() == fresh.sql(query).rows()
    assert store.sql("SELECT source_line, sample_idx FROM trajectories ORDER BY 1").rows() == [(1, 0), (2, 1), (4, 0)]
    assert store.sql("SELECT source_line, reason FROM ingest_rejects").rows() == [
        (3, "record: invalid JSON (unexpected character, expected a string key: line 1 column 2 (char 1))")
    ]
    runs = "SELECT records, trajectories, failed_runs, questions, rejects FROM ingest_runs"
    assert store.sql(runs).rows() == fresh.sql(runs).rows() == [(4, 3, 0, 2, 1)]
    retries = store.sql("SELECT options->'retries' FROM ingest_runs").item()
    assert [(r["lines"], r["taken_in"], r["max_record_bytes"]) for r in json.loads(retries)] == [(2, 1, 1 << 20)]
    # A second retry finds nothing new to take in and changes nothing.
    before = snapshot(store)
    (third,) = ingest(store, [path], "d", options=retry)
    assert (third.records, third.trajectories, third.rejects) == (1, 0, 1)
    assert snapshot(store) == before


def test_retry_rejects_on_a_new_file_is_a_plain_ingest(tmp_path: Path) -> None:
    path = oversize_file(tmp_path)
    retry = IngestOptions(progress=False, retry_rejects=True)
    (summary,) = ingest(Store(tmp_path / "s.duckdb"), [path], "d", options=retry)
    assert (summary.retried, summary.records, summary.trajectories, summary.rejects) == (False, 4, 3, 1)


def test_cli_retry_rejects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = oversize_file(tmp_path)
    db = tmp_path / "with space" / "s.duckdb"
    db.parent.mkdir()
    base = ["ingest", str(path), "--db", str(db), "--dataset", "d", "--quiet"]
    assert main([*base, "--max-record-bytes", "2000"]) == 0
    hint = capsys.readouterr().out.splitlines()[-1]
    query = "SELECT source_line, reason FROM ingest_rejects WHERE ingest_id = 1"
    assert hint == f"  rejects: curate sql --db {shlex.quote(str(db))} {shlex.quote(query)}"
    assert shlex.split(hint.split(": ", 1)[1])[3] == str(db)
    assert main([*base, "--retry-rejects"]) == 0
    assert "retried 2 rejected records of ingest 1 in 'd': 1 trajectories" in capsys.readouterr().out


def test_failed_ingest_leaves_no_new_store_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "new.duckdb"
    assert main(["ingest", str(tmp_path / "missing.jsonl"), "--db", str(db), "--dataset", "d", "--quiet"]) == 2
    assert "missing.jsonl: no such file or folder" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == []
    # A store that was there before stays, whatever happens.
    Store(db).close()
    assert main(["ingest", str(tmp_path / "missing.jsonl"), "--db", str(db), "--dataset", "d", "--quiet"]) == 2
    assert db.exists()


def test_a_store_whose_connection_died_is_kept_and_the_first_error_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def dies(store, *args, **kwargs):  # as after a fatal DuckDB error: the connection is unusable
        store.con.close()
        raise OSError(28, "No space left on device")
        yield

    monkeypatch.setattr("curate.ingest.ingest", dies)
    db = tmp_path / "new.duckdb"
    assert main(["ingest", str(oversize_file(tmp_path)), "--db", str(db), "--dataset", "d", "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"curate ingest: error: {db}: no space left on the device; free some space "
        "or write elsewhere, then run the same command again (what was being "
        "written is not kept half-done)\n"
    )
    assert db.exists()


def test_symlink_loop_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").symlink_to(tmp_path / "b.jsonl")
    (tmp_path / "b.jsonl").symlink_to(tmp_path / "a.jsonl")
    with pytest.raises(OSError, match=r"a\.jsonl: a symbolic link loop \(Too many levels of symbolic links\)$"):
        ingest(Store(tmp_path / "s.duckdb"), [tmp_path / "a.jsonl"], "d", options=QUIET)


# Root reads any file: the child drops to the `nobody` user first when run as root (after its
# imports: the interpreter's own files may be readable by root alone).
UNREADABLE = textwrap.dedent("""
    import os, sys
    from curate.ingest import IngestOptions, ingest
    from curate.store import Store

    store = Store(":memory:")
    if os.geteuid() == 0:
        os.setuid(65534)
    try:
        ingest(store, [sys.argv[1]], "d", options=IngestOptions(progress=False))
    except PermissionError as error:
        print(error)
""")


def test_unreadable_input_is_named() -> None:
    with tempfile.TemporaryDirectory() as folder:  # under /tmp: other users can reach the file itself
        os.chmod(folder, 0o755)
        path = write_jsonl(Path(folder) / "runs.jsonl", [record(RUNS[0])])
        path.chmod(0)
        done = subprocess.run([sys.executable, "-c", UNREADABLE, str(path)], capture_output=True, text=True)
    assert done.stdout == f"{path}: cannot read it (Permission denied)\n", done.stderr


# The disk fills up in the middle of a file: RLIMIT_FSIZE caps the size of any file this process
# writes (no root or special filesystem needed; the kernel's answer is EFBIG, "File too large",
# where a full disk gives ENOSPC through the same DuckDB write path).
FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    from curate.cli import main

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.exit(main(["ingest", sys.argv[2], "--db", sys.argv[3], "--dataset", "d", "--quiet",
                   "--batch-records", "100000"]))
""")


def test_disk_full_names_the_cause_and_keeps_the_store(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    small = write_jsonl(tmp_path / "small.jsonl", [record(r) for r in RUNS])
    with Store(db) as store:
        ingest(store, [small], "d", options=QUIET)
        before = snapshot(store)
    # Over a row group of message rows in one insert: DuckDB writes them to the file mid-transaction.
    many = [
        {
            "question": f"q{i}",
            "correct": True,
            "messages": [
                {"role": "user", "content": f"q{i}"},
                *({"role": "assistant", "content": f"{i}.{j}"} for j in range(64)),
            ],
        }
        for i in range(2000)
    ]
    big = write_jsonl(tmp_path / "big.jsonl", many)
    limit = db.stat().st_size + (256 << 10)
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(limit), str(big), str(db)], capture_output=True, text=True
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "File too large" in last and str(big) in last, done.stderr
    assert "Current transaction is aborted" not in done.stderr
    with Store(db) as store:
        assert snapshot(store) == before


def test_byte_order_mark_before_an_oversized_line(tmp_path: Path) -> None:
    first, last = good_lines()
    big = json.loads(first)
    big["question"] = "x" * 3000
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(big).encode() + b"\n" + last)  # no final newline
    store = Store(tmp_path / "s.duckdb")
    (summary,) = ingest(store, [path], "d", options=IngestOptions(max_record_bytes=2000, progress=False))
    assert (summary.records, summary.trajectories, summary.rejects) == (2, 1, 1)
    size = len(json.dumps(big))
    assert store.sql("SELECT source_line, reason FROM ingest_rejects").rows() == [
        (1, f"record: {size} bytes, over the 2000-byte limit (max_record_bytes); its first 2002 bytes are kept")
    ]
