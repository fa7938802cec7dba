"""`curate ingest PATH... --dataset NAME`: read teacher runs into the store."""

from __future__ import annotations

import argparse
import shlex

from .bounds import COUNT, NAME
from .common import add_db, add_debug

PATH_FLAGS = {
    "messages": "the message list (e.g. data.turns)",
    "question": "the question text",
    "question_id": "the question's source id (default: a hash of the question text)",
    "correct": "correctness (boolean or 0/1)",
    "model": "the teacher model",
    "answer": "the run's final answer",
    "gold": "the gold answer",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "ingest",
        help="read teacher runs (JSONL/.gz/.zst, HF datasets, parquet) into the store",
        description="Ingest teacher runs. Each file is one transaction; a file already ingested into "
        "the data set is skipped; records that cannot be read go to ingest_rejects with a reason.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files, save_to_disk folders, or folders of files")
    add_db(parser)
    parser.add_argument("--dataset", type=NAME, required=True, help="data set name the runs belong to")
    parser.add_argument(
        "--format",
        default="auto",
        choices=["auto", "smolagents", "hf", "chat", "mint", "jsonpath"],
        help="record format (auto: sniffed from the first records; any --*-path option means jsonpath)",
    )
    parser.add_argument(
        "--profile",
        choices=["smolagents", "smolagents_new", "mint"],
        help="marker profile for tool-call counts (default: the format's)",
    )
    paths = parser.add_argument_group("JSON paths (dotted, e.g. state.history; a JSON string on the way is decoded)")
    for name, what in PATH_FLAGS.items():
        paths.add_argument(f"--{name.replace('_', '-')}-path", dest=name, metavar="PATH", help=f"where {what} lives")
    paths.add_argument("--role-key", dest="role_key", metavar="KEY", help="role key inside a message (default: role)")
    paths.add_argument(
        "--content-key", dest="content_key", metavar="KEY", help="content key inside a message (default: content)"
    )
    parser.add_argument("--batch-records", type=COUNT, default=2000, help="records per insert batch")
    parser.add_argument("--max-record-bytes", type=COUNT, default=8 << 20, help="longer lines are rejected")
    parser.add_argument(
        "--retry-rejects",
        action="store_true",
        help="for a file already ingested, read its rejected lines again under these options "
        "(e.g. a larger --max-record-bytes) and take in those that now parse",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from contextlib import suppress
    from pathlib import Path

    import duckdb

    from ..ingest import IngestOptions, ingest
    from ..store import Store

    chosen = [*PATH_FLAGS, "role_key", "content_key"]
    options = IngestOptions(
        profile=args.profile,
        paths=tuple((k, getattr(args, k)) for k in chosen if getattr(args, k) is not None),
        batch_records=args.batch_records,
        max_record_bytes=args.max_record_bytes,
        progress=not args.quiet,
        retry_rejects=args.retry_rejects,
    )
    db = Path(args.db)
    created = not db.exists()
    store = Store(db)
    try:
        for summary in ingest(store, args.paths, args.dataset, args.format, options):
            print(summary.line())
            if summary.rejects and not summary.already_ingested:
                query = f"SELECT source_line, reason FROM ingest_rejects WHERE ingest_id = {summary.ingest_id}"
                print(f"  rejects: curate sql --db {shlex.quote(args.db)} {shlex.quote(query)}")
    except BaseException:
        # A store this command created and left without a single ingest run is not left behind. When
        # the connection is no longer usable (DuckDB invalidates it on a fatal error) the store is kept
        # and the first error is the one reported.
        unused = False
        with suppress(duckdb.Error):
            unused = created and store.sql("SELECT count(*) FROM ingest_runs").item() == 0
        store.close()
        if unused:
            for path in (db, db.with_name(db.name + ".wal")):
                path.unlink(missing_ok=True)
        raise
    store.close()
    return 0
