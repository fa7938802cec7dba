"""Ingest sources: JSONL files (plain, .gz, .zst) read line by line under a size cap, and Hugging
Face datasets (a save_to_disk folder, parquet files) read in Arrow batches; never a file whole.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

# Files a folder contributes; a file named on the command line is read whatever its name.
FOLDER_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".jsonl.zst", ".ndjson.gz", ".ndjson.zst")
KEPT_HEAD = 64 << 10  # bytes of an oversized record kept in ingest_rejects


@dataclass(frozen=True)
class Source:
    """One unit of ingest (one transaction): a JSONL file, a parquet file or a save_to_disk folder."""

    path: Path
    kind: str  # jsonl | parquet | hf_disk

    def files(self) -> list[Path]:
        """The files whose bytes make up this source (hashed for idempotence)."""
        if self.kind == "hf_disk":
            return sorted(p for p in self.path.rglob("*") if p.is_file())
        return [self.path]

    def size(self) -> int:
        """Bytes on disk (compressed, for compressed files)."""
        return sum(p.stat().st_size for p in self.files())


def expand(paths: Iterable[str | Path]) -> list[Source]:
    """Sources named by paths: files as given, a save_to_disk folder whole, other folders' files."""
    found = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        if path.is_dir():
            if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
                found.append(Source(path, "hf_disk"))
                continue
            inner = sorted(p for p in path.iterdir() if p.is_file() and _kind(p))
            if not inner:
                raise FileNotFoundError(f"{path}: a folder with no JSONL/parquet files and no saved dataset")
            found.extend(Source(p, _kind(p)) for p in inner)
        else:
            found.append(Source(path, _kind(path) or "jsonl"))
    return found


def _kind(path: Path) -> str | None:
    if path.suffix == ".parquet":
        return "parquet"
    return "jsonl" if path.name.endswith(FOLDER_SUFFIXES) else None


def content_hash(source: Source) -> str:
    """sha256 of the source's bytes (and, for folders, its file names)."""
    digest = hashlib.sha256()
    for file in source.files():
        if source.kind == "hf_disk":
            digest.update(str(file.relative_to(source.path)).encode() + b"\0")
        with open(file, "rb") as fh:
            while chunk := fh.read(8 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def open_bytes(path: Path) -> tuple[BinaryIO, BinaryIO]:
    """(decompressed stream, underlying file): the file's position measures progress."""
    raw = open(path, "rb")
    with open(path, "rb") as probe:
        magic = probe.read(4)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw), raw
    if magic == b"\x28\xb5\x2f\xfd":
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_size=1 << 20)
        return io.BufferedReader(reader, buffer_size=1 << 20), raw
    return io.BufferedReader(raw, buffer_size=1 << 20), raw


@dataclass(frozen=True)
class Line:
    """One line of a JSONL file: 1-based number, bytes (the head only if oversized), full size."""

    number: int
    data: bytes
    size: int

    @property
    def oversized(self) -> bool:
        """True when only the head of the line was kept (it is over the size cap)."""
        return self.size > len(self.data)


class CorruptStream(ValueError):
    """A compressed file that ends early or holds bad data; `line` is the first line not read."""

    def __init__(self, line: int, error: Exception) -> None:
        super().__init__(f"file: compressed stream is corrupt or cut short after line {line - 1} ({error})")
        self.line = line


def lines(stream: BinaryIO, max_bytes: int) -> Iterator[Line]:
    """Non-blank lines of a stream; a line over max_bytes is skipped past, keeping its head."""
    number = 0
    while True:
        data = _readline(stream, max_bytes + 2, number)
        if not data:
            return
        number += 1
        content = data.rstrip(b"\r\n")
        if len(content) <= max_bytes:
            if content.strip():
                yield Line(number, content, len(content))
            continue
        size = len(content)
        while not data.endswith(b"\n"):
            data = _readline(stream, 1 << 20, number - 1)
            if not data:
                break
            size += len(data.rstrip(b"\r\n"))
        yield Line(number, content[:KEPT_HEAD], size)


def _readline(stream: BinaryIO, limit: int, number: int) -> bytes:
    try:
        return stream.readline(limit)
    except (EOFError, OSError, zstandard.ZstdError) as error:
        raise CorruptStream(number + 1, error) from None


def rows(source: Source, batch_size: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based row, record) of a parquet file or a save_to_disk folder, read in Arrow batches."""
    if source.kind == "parquet":
        import pyarrow.parquet as pq

        batches: Iterable = pq.ParquetFile(source.path).iter_batches(batch_size=batch_size)
    else:
        import datasets

        loaded = datasets.load_from_disk(str(source.path))
        splits = [loaded[k] for k in sorted(loaded)] if isinstance(loaded, datasets.DatasetDict) else [loaded]
        batches = (b for split in splits for b in split.with_format("arrow").iter(batch_size=batch_size))
    number = 0
    for batch in batches:
        for record in batch.to_pylist():
            number += 1
            yield number, record
