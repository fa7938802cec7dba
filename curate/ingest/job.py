"""Ingest teacher runs into the store: each file one transaction, streamed in batches, inserted
through Arrow, idempotent by (file content, data set); unreadable records go to ingest_rejects.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from .. import queries
from ..store import Store
from . import formats, sources
from .formats import FLAGS, RecordError

CONTAINER_FORMATS = ("auto", "hf")
FORMATS = ("auto", "smolagents", "hf", "chat", "mint", "jsonpath")
SNIFF_RECORDS = 1000


@dataclass(frozen=True)
class IngestOptions:
    """How records are read: a marker profile and JSON paths overriding the format's, batch sizes."""

    profile: str | None = None
    paths: tuple[tuple[str, str], ...] = ()  # (option, dotted path), e.g. ("messages", "data.turns")
    batch_records: int = 2000
    max_record_bytes: int = 8 << 20
    progress: bool = True
    # A file already ingested has its rejected lines read again under these options (not skipped).
    retry_rejects: bool = False
    # Called after each batch is written (inside the file's transaction) with records read so far.
    on_batch: Callable[[int], None] | None = field(default=None, compare=False)


@dataclass
class IngestSummary:
    """What one file added (or that it was already in the store)."""

    source_file: str
    dataset: str
    format: str
    ingest_id: int
    already_ingested: bool = False
    retried: bool = False  # a retry of an earlier ingest's rejects: the counts are what it added
    records: int = 0
    trajectories: int = 0
    failed_runs: int = 0
    questions: int = 0
    correct: int = 0
    clean: int = 0
    parse_error: int = 0
    max_steps: int = 0
    exec_error: int = 0
    assistant_turns: int = 0
    tool_calls: int = 0
    rejects: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        """One human-readable summary line."""
        if self.already_ingested:
            return (
                f"{self.source_file}: already ingested into {self.dataset!r} (ingest {self.ingest_id}), nothing to do"
            )
        if self.retried:
            return (
                f"{self.source_file}: retried {self.records} rejected records of ingest {self.ingest_id} in "
                f"{self.dataset!r}: {self.trajectories} trajectories, {self.failed_runs} failed runs taken in, "
                f"{self.rejects} still rejected"
            )
        flags = ", ".join(f"{f} {getattr(self, f)}" for f in FLAGS)
        return (
            f"{self.source_file} -> {self.dataset!r} [{self.format}]: {self.records} records, "
            f"{self.trajectories} trajectories, {self.failed_runs} failed runs, {self.questions} questions, "
            f"{self.correct} correct, {self.clean} clean, {flags}, {self.rejects} rejects "
            f"({self.bytes / 1e6:.1f} MB in {self.seconds:.1f} s)"
        )


def ingest(
    store: Store,
    paths: Iterable[str | Path],
    dataset: str,
    format: str = "auto",
    options: IngestOptions | None = None,
) -> list[IngestSummary]:
    """Ingest files (JSONL/.gz/.zst, parquet, save_to_disk folders) into `dataset`; one summary each."""
    options = options or IngestOptions()
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r} (known: {', '.join(FORMATS)})")
    if not dataset:
        raise ValueError("a data set name is needed (--dataset)")
    # A pipe is spooled beside the store (in the temp folder for a store in memory).
    spool = None if store.path.name == ":memory:" else store.path.parent
    summaries = []
    for named in sources.expand(paths):
        with sources.readable(named, spool) as (source, file_hash):
            done = store.sql(
                "SELECT ingest_id, format FROM ingest_runs WHERE file_hash = $h AND dataset = $d",
                h=file_hash,
                d=dataset,
            )
            if not done.height:
                summaries.append(
                    _write(store, source, lambda con: _ingest_source(con, source, file_hash, dataset, format, options))
                )
            elif options.retry_rejects:
                # bound now, as values: a lambda in a loop would need default arguments, which mypy cannot type
                retry = partial(
                    _retry_rejects,
                    source=source,
                    file_hash=file_hash,
                    ingest_id=done.row(0)[0],
                    format=format,
                    options=options,
                )
                summaries.append(_write(store, source, retry))
            else:
                ingest_id, recorded = done.row(0)
                summaries.append(IngestSummary(str(source.path), dataset, recorded, ingest_id, already_ingested=True))
    return summaries


class IngestError(RuntimeError):
    """A file that could not be written into the store (which is left as it was)."""


def _write(
    store: Store, source: sources.Source, work: Callable[[duckdb.DuckDBPyConnection], IngestSummary]
) -> IngestSummary:
    """Run `work` in one transaction; a store error (disk full, lock) becomes one line naming the file."""
    try:
        with store.transaction() as con:
            return work(con)
    except duckdb.Error as error:
        # Statements after a failed one only say that the transaction is aborted: name the first cause.
        cause: BaseException = error
        while isinstance(cause.__context__, duckdb.Error):
            cause = cause.__context__
        first = str(cause).strip().splitlines()[0]
        raise IngestError(f"{source.path}: not ingested, the store is as it was ({first})") from error


def _record_stream(source: sources.Source, options: IngestOptions) -> Iterator[tuple[int, bytes | None, Any]]:
    """(line, raw bytes or None, record or RecordError) for every record of a source."""
    if source.kind != "jsonl":
        for number, record in sources.rows(source, options.batch_records):
            yield number, None, record
        return
    stream, raw = sources.open_bytes(source)
    with raw, stream:
        try:
            yield from _jsonl_records(stream, options)
        except sources.CorruptStream as error:
            # The records before the damage go in; the damage itself is one reject.
            yield error.line, b"", RecordError(str(error))


def _jsonl_records(stream: Any, options: IngestOptions) -> Iterator[tuple[int, bytes, Any]]:
    for line in sources.lines(stream, options.max_record_bytes):
        if line.oversized:
            yield (
                line.number,
                line.data,
                RecordError(
                    f"record: {line.size} bytes, over the {options.max_record_bytes}-byte limit "
                    f"(max_record_bytes); its first {len(line.data)} bytes are kept"
                ),
            )
            continue
        try:
            yield line.number, line.data, orjson.loads(line.data)
        except orjson.JSONDecodeError as error:
            yield line.number, line.data, RecordError(_json_reason(line.data, error))


def _json_reason(data: bytes, error: Exception) -> str:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"record: not valid UTF-8 (byte 0x{data[bad.start]:02x} at offset {bad.start})"
    return f"record: invalid JSON ({error})"


def _resolve_spec(source: sources.Source, format: str, options: IngestOptions) -> tuple[str, formats.Spec]:
    """(format recorded for the run, record spec) for one source."""
    paths = dict(options.paths)
    if format == "hf" and source.kind == "jsonl":
        raise ValueError(f"{source.path}: --format hf reads a save_to_disk folder or parquet files")
    if format not in CONTAINER_FORMATS:
        return format, formats.spec_for(format, options.profile, **paths)
    if paths:
        record_format = "jsonpath"
    else:
        sniffed: str | None = None
        keys: set[str] = set()
        for _number, _raw, record in _peek(source, options):
            if isinstance(record, dict):
                keys.update(record)
                if sniffed := formats.sniff(record):
                    break
        if sniffed is None and keys:
            raise ValueError(
                f"{source.path}: cannot tell the record format from the keys of its first records "
                f"({', '.join(sorted(keys)[:12])}); give --format, or --messages-path and the other path options"
            )
        # No readable record at all: every record is rejected whatever the format.
        record_format = sniffed or "smolagents"
    recorded = "hf" if source.kind != "jsonl" else record_format
    return recorded, formats.spec_for(record_format, options.profile, **paths)


def _peek(source: sources.Source, options: IngestOptions) -> Iterator[tuple[int, bytes | None, Any]]:
    for i, item in enumerate(_record_stream(source, options)):
        if i >= SNIFF_RECORDS:
            return
        yield item


class _Batch:
    """Rows of up to one batch of records, inserted through Arrow tables in one statement each."""

    def __init__(self) -> None:
        self.trajectories: dict[str, list] = {}
        self.messages: dict[str, list] = {k: [] for k in ("trajectory_id", "position", "role", "norm_role", "text")}
        self.questions: dict[str, list] = {
            k: [] for k in ("question_id", "text", "gold_answer", "words", "source_meta")
        }
        self.failed: dict[str, list] = {k: [] for k in ("question_id", "teacher_model", "source_line", "error")}
        self.rejects: dict[str, list] = {k: [] for k in ("source_line", "reason", "raw")}
        self.records = 0

    def add_trajectory(self, row: dict[str, Any], messages: list[tuple[str, str, str]]) -> None:
        """Queue one trajectory row and its messages (stored role, normalised role, text)."""
        for key, value in row.items():
            self.trajectories.setdefault(key, []).append(value)
        tid = row["trajectory_id"]
        m = self.messages
        m["trajectory_id"].extend([tid] * len(messages))
        m["position"].extend(range(len(messages)))
        for role, norm, text in messages:
            m["role"].append(role)
            m["norm_role"].append(norm)
            m["text"].append(text)

    def write(self, con: duckdb.DuckDBPyConnection, fixed: dict[str, Any]) -> None:
        """Insert every row of the batch; `fixed` holds the columns shared by the whole file."""
        n = len(self.trajectories.get("trajectory_id", ()))
        _insert(con, "trajectories", {**self.trajectories, **_repeat(fixed, n, "dataset", "ingest_id", "source_file")})
        _insert(con, "messages", self.messages)
        _insert(
            con,
            "questions",
            {**self.questions, **_repeat(fixed, len(self.questions["text"]), "dataset")},
            conflict="ON CONFLICT DO NOTHING",
        )
        _insert(
            con,
            "failed_runs",
            {**self.failed, **_repeat(fixed, len(self.failed["error"]), "ingest_id", "dataset", "source_file")},
        )
        _insert(
            con,
            "ingest_rejects",
            {**self.rejects, **_repeat(fixed, len(self.rejects["reason"]), "ingest_id", "source_file")},
        )


def _repeat(fixed: dict[str, Any], n: int, *keys: str) -> dict[str, list]:
    return {k: [fixed[k]] * n for k in keys}


def _insert(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, list], conflict: str = "") -> None:
    if not columns or not next(iter(columns.values())):
        return
    arrow = pa.table({k: pa.array(v, pa.binary() if k == "raw" else None) for k, v in columns.items()})
    con.register("_ingest_batch", arrow)
    # No `finally`: after a failed insert the transaction is aborted and unregistering would fail too,
    # hiding the real cause (a full disk); the next register replaces the view anyway.
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _ingest_batch {conflict}").fetchall()
    con.unregister("_ingest_batch")


class _Records:
    """Turns the records of one file into batched rows, with the file's sample and question state."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        summary: IngestSummary,
        spec: formats.Spec,
        file_hash: str,
        options: IngestOptions,
        source_file: str | None = None,
    ) -> None:
        self.con, self.summary, self.spec, self.file_hash, self.options = con, summary, spec, file_hash, options
        dataset = summary.dataset
        self.fixed = {
            "dataset": dataset,
            "ingest_id": summary.ingest_id,
            "source_file": source_file or summary.source_file,
        }
        self.lines: set[int] = set()
        self.next_sample = dict(
            con.execute(
                "SELECT question_id, max(sample_idx) + 1 FROM trajectories WHERE dataset = $d GROUP BY 1",
                {"d": dataset},
            ).fetchall()
        )
        self.stored_questions = {
            q for (q,) in con.execute("SELECT question_id FROM questions WHERE dataset = $d", {"d": dataset}).fetchall()
        }
        self.file_questions: set[str] = set()
        self.role_cache: dict[str, str] = {}
        self.batch = _Batch()
        self.bar = _progress(summary, options)

    def add(self, number: int, raw: bytes | None, record: Any) -> None:
        """One record (or the RecordError of one that could not be read) at a 1-based line."""
        summary, batch = self.summary, self.batch
        summary.records += 1
        batch.records += 1
        self.lines.add(number)
        try:
            if isinstance(record, RecordError):
                raise record
            parsed = formats.parse(record, self.spec, self.role_cache)
        except RecordError as error:
            summary.rejects += 1
            batch.rejects["source_line"].append(number)
            batch.rejects["reason"].append(str(error))
            batch.rejects["raw"].append(raw if raw is not None else _raw_row(record))
        else:
            self._add_parsed(number, parsed)
        if batch.records >= self.options.batch_records:
            self.flush()

    def _add_parsed(self, number: int, parsed: formats.Parsed) -> None:
        summary, batch, qid = self.summary, self.batch, parsed.question_id
        self.file_questions.add(qid)
        if qid not in self.stored_questions:
            self.stored_questions.add(qid)
            q = batch.questions
            q["question_id"].append(qid)
            q["text"].append(parsed.question)
            q["gold_answer"].append(parsed.gold)
            q["words"].append(len(parsed.question.split()))
            q["source_meta"].append(parsed.meta)
        if parsed.failed:
            summary.failed_runs += 1
            for key, value in (
                ("question_id", qid),
                ("teacher_model", parsed.model),
                ("source_line", number),
                ("error", parsed.error),
            ):
                batch.failed[key].append(value)
            return
        sample = self.next_sample.get(qid, 0)
        self.next_sample[qid] = sample + 1
        row, messages = parsed.trajectory()
        # The id depends on the file's content and the line alone: a retried record gets the id it
        # would have had, and re-ingesting the same bytes gives the same ids.
        tid = hashlib.blake2b(f"{summary.dataset}\0{self.file_hash}\0{number}".encode(), digest_size=10).hexdigest()
        batch.add_trajectory(
            {"trajectory_id": tid, "question_id": qid, "sample_idx": sample, "source_line": number, **row},
            messages,
        )
        _count(summary, row)

    def flush(self) -> None:
        """Write the queued rows (inside the file's transaction)."""
        self.batch.write(self.con, self.fixed)
        self.bar.update(self.batch.records)
        if self.options.on_batch is not None:
            self.options.on_batch(self.summary.records)
        self.batch = _Batch()

    def close(self) -> None:
        """Write what is left; the summary's question count is the file's distinct questions."""
        self.flush()
        self.bar.close()
        self.summary.questions = len(self.file_questions)


def _raw_row(record: Any) -> bytes:
    """The bytes kept for a rejected row of a parquet file or saved data set."""
    try:
        return orjson.dumps(record, default=str)
    except TypeError:  # nested too deeply for JSON text
        return repr(record).encode()


def _ingest_source(
    con: duckdb.DuckDBPyConnection,
    source: sources.Source,
    file_hash: str,
    dataset: str,
    format: str,
    options: IngestOptions,
) -> IngestSummary:
    started, clock = datetime.now(), time.perf_counter()
    recorded, spec = _resolve_spec(source, format, options)
    ingest_id = con.execute("SELECT coalesce(max(ingest_id), 0) + 1 FROM ingest_runs").fetchall()[0][0]
    summary = IngestSummary(str(source.path), dataset, recorded, ingest_id, bytes=source.size())
    records = _Records(con, summary, spec, file_hash, options)
    for number, raw, record in _record_stream(source, options):
        records.add(number, raw, record)
    records.close()
    if summary.records == 0:
        summary.rejects += 1
        _insert(
            con,
            "ingest_rejects",
            {
                "ingest_id": [ingest_id],
                "source_file": [str(source.path)],
                "source_line": [0],
                "reason": ["file: empty, no records"],
                "raw": [b""],
            },
        )
    summary.seconds = time.perf_counter() - clock
    _record_run(con, summary, file_hash, spec, options, started)
    return summary


def _retry_rejects(
    con: duckdb.DuckDBPyConnection,
    source: sources.Source,
    file_hash: str,
    ingest_id: int,
    format: str,
    options: IngestOptions,
) -> IngestSummary:
    """Read the rejected lines of an ingested file again under `options`; what parses now goes in.

    Each line keeps the trajectory id a first ingest would give it; a new trajectory is its question's
    next sample. Lines still rejected keep one reject row (with the new reason); the run's counts are
    updated and the retry is logged in its options. A retry that takes nothing in changes nothing.
    """
    clock = time.perf_counter()
    dataset, recorded, used, first_file = con.execute(
        "SELECT dataset, format, options, source_file FROM ingest_runs WHERE ingest_id = $i", {"i": ingest_id}
    ).fetchall()[0]
    used = orjson.loads(used)
    summary = IngestSummary(str(source.path), dataset, recorded, ingest_id, retried=True, bytes=source.size())
    rejected = "SELECT source_line, reason, raw FROM ingest_rejects WHERE ingest_id = $i AND source_line > 0"
    before = sorted(con.execute(rejected, {"i": ingest_id}).fetchall())
    if not before:
        return summary
    spec = _retry_spec(source, format, options, used["spec"])
    con.execute("DELETE FROM ingest_rejects WHERE ingest_id = $i AND source_line > 0", {"i": ingest_id})
    # Rows keep the file name of the first ingest (the same bytes may come under another name now).
    records = _Records(con, summary, spec, file_hash, options, source_file=first_file)
    wanted, last = {line for line, _r, _b in before}, before[-1][0]
    for number, raw, record in _record_stream(source, options):
        if number in wanted:
            records.add(number, raw, record)
        if number >= last:
            break
    records.close()
    # A rejected line that is no record now (all blanks under a larger size limit) keeps its reject.
    kept = [row for row in before if row[0] not in records.lines]
    _insert(
        con,
        "ingest_rejects",
        {
            "ingest_id": [ingest_id] * len(kept),
            "source_file": [first_file] * len(kept),
            "source_line": [r[0] for r in kept],
            "reason": [r[1] for r in kept],
            "raw": [r[2] for r in kept],
        },
    )
    summary.seconds = time.perf_counter() - clock
    if sorted(con.execute(rejected, {"i": ingest_id}).fetchall()) != before:
        used.setdefault("retries", []).append(
            {
                "at": datetime.now().isoformat(timespec="seconds"),
                "lines": summary.records,
                "taken_in": summary.records - summary.rejects,
                "spec": spec.options(),
                "max_record_bytes": options.max_record_bytes,
            }
        )
        counts = {k: getattr(summary, k) for k in ("trajectories", "failed_runs", "correct", "clean", *FLAGS)}
        con.execute(
            queries.sql_text("ingest/retried_run"),
            {"ingest_id": ingest_id, "options": orjson.dumps(used).decode(), **counts},
        )
    return summary


def _retry_spec(source: sources.Source, format: str, options: IngestOptions, stored: dict[str, Any]) -> formats.Spec:
    """The spec a retry reads with: the one the file was ingested with, unless the options name another."""
    if format != "auto" or options.paths:
        return _resolve_spec(source, format, options)[1]
    paths = {k: stored[k] for k in formats.PATH_OPTIONS}
    return formats.spec_for(stored["name"], options.profile or stored["profile"], **paths)


def _count(summary: IngestSummary, row: dict[str, Any]) -> None:
    summary.trajectories += 1
    for key in ("correct", "clean", *FLAGS):
        setattr(summary, key, getattr(summary, key) + bool(row[key]))
    summary.assistant_turns += row["assistant_turns"]
    summary.tool_calls += row["tool_calls"]


def _progress(summary: IngestSummary, options: IngestOptions) -> Any:
    from tqdm import tqdm

    return tqdm(
        desc=f"ingest {Path(summary.source_file).name} ({summary.bytes / 1e6:.1f} MB)",
        unit=" records",
        disable=not options.progress,
        leave=False,
    )


def _record_run(
    con, summary: IngestSummary, file_hash: str, spec: formats.Spec, options: IngestOptions, started: datetime
) -> None:
    stored = asdict(summary)
    counts = {
        k: stored[k]
        for k in ("records", "trajectories", "failed_runs", "questions", "correct", "clean", *FLAGS, "rejects")
    }
    used = {
        "spec": spec.options(),
        "batch_records": options.batch_records,
        "max_record_bytes": options.max_record_bytes,
    }
    con.execute(
        "INSERT INTO ingest_runs BY NAME SELECT $ingest_id AS ingest_id, $source_file AS source_file, "
        "$file_hash AS file_hash, $format AS format, $dataset AS dataset, "
        + ", ".join(f"${k} AS {k}" for k in counts)
        + ", $options::JSON AS options, $started AS started_at, $finished AS finished_at",
        {
            "ingest_id": summary.ingest_id,
            "source_file": summary.source_file,
            "file_hash": file_hash,
            "format": summary.format,
            "dataset": summary.dataset,
            **counts,
            "options": orjson.dumps(used).decode(),
            "started": started,
            "finished": datetime.now(),
        },
    ).fetchall()
