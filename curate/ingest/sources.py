"""Ingest sources: JSONL files (plain, .gz, .zst) read line by line under a size cap, and Hugging
Face datasets (a save_to_disk folder, parquet files) read in Arrow batches; never a file whole.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

# Files a folder contributes; a file named on the command line is read whatever its name.
FOLDER_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".jsonl.zst", ".ndjson.gz", ".ndjson.zst")
KEPT_HEAD = 64 << 10  # bytes of an oversized record kept in ingest_rejects
BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark some editors put before the first line


@dataclass(frozen=True)
class Source:
    """One unit of ingest (one transaction): a JSONL file, a parquet file or a save_to_disk folder."""

    path: Path
    kind: str  # jsonl | parquet | hf_disk
    spool: Path | None = None  # where the bytes of a pipe were copied, read in its place

    @property
    def data(self) -> Path:
        """The file to read: the path itself, or the spooled copy of a pipe."""
        return self.spool or self.path

    def files(self) -> list[Path]:
        """The files whose bytes make up this source (hashed for idempotence)."""
        if self.kind == "hf_disk":
            return sorted(p for p in self.path.rglob("*") if p.is_file())
        return [self.data]

    def size(self) -> int:
        """Bytes on disk (compressed, for compressed files)."""
        return sum(p.stat().st_size for p in self.files())


def expand(paths: Iterable[str | Path]) -> list[Source]:
    """Sources named by paths: files as given, a save_to_disk folder whole, other folders' files."""
    found = []
    for raw in paths:
        path = Path(raw)
        try:
            path.stat()
        except OSError as error:
            raise named_error(path, error) from None
        if path.is_dir():
            if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
                found.append(Source(path, "hf_disk"))
                continue
            try:
                inner = sorted((p, kind) for p in path.iterdir() if p.is_file() and (kind := _kind(p)))
            except OSError as error:
                raise named_error(path, error) from None
            if not inner:
                raise FileNotFoundError(f"{path}: a folder with no JSONL/parquet files and no saved dataset")
            found.extend(Source(p, kind) for p, kind in inner)
        else:
            found.append(Source(path, _kind(path) or "jsonl"))
    return found


def _kind(path: Path) -> str | None:
    if path.suffix == ".parquet":
        return "parquet"
    return "jsonl" if path.name.endswith(FOLDER_SUFFIXES) else None


def named_error(path: Path, error: OSError) -> OSError:
    """An OSError whose one-line message starts with the path and says what is wrong with it."""
    if isinstance(error, FileNotFoundError):
        return FileNotFoundError(f"{path}: no such file or folder")
    if error.errno == errno.ELOOP:
        return OSError(f"{path}: a symbolic link loop ({error.strerror})")
    if isinstance(error, PermissionError):
        return PermissionError(f"{path}: cannot read it ({error.strerror})")
    return OSError(f"{path}: {error.strerror or error}")


def open_file(path: Path, shown: Path | None = None) -> io.BufferedReader:
    """The file opened for reading; an error names `shown` (the path the user gave) or the file."""
    try:
        return open(path, "rb")
    except OSError as error:
        raise named_error(shown or path, error) from None


def content_hash(source: Source) -> str:
    """sha256 of the source's bytes (and, for folders, its file names)."""
    digest = hashlib.sha256()
    for file in source.files():
        if source.kind == "hf_disk":
            digest.update(str(file.relative_to(source.path)).encode() + b"\0")
        with open_file(file, source.path if file == source.data else file) as fh:
            while chunk := fh.read(8 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def is_stream(path: Path) -> bool:
    """True for a pipe, socket or terminal (`/dev/stdin`, `<(zcat ...)`): its bytes can be read once."""
    mode = path.stat().st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


@contextmanager
def readable(source: Source, folder: Path | None) -> Iterator[tuple[Source, str]]:
    """(source to read, content hash). A pipe is copied once into a spool file in `folder` (beside
    the store, which has room for the data) and hashed as it is copied; the spool goes afterwards."""
    if source.kind == "hf_disk" or not is_stream(source.path):
        yield source, content_hash(source)
        return
    digest = hashlib.sha256()
    fd, name = tempfile.mkstemp(prefix=".curate-spool-", dir=folder)
    spool = Path(name)
    try:
        with open_file(source.path) as stream, os.fdopen(fd, "wb") as out:
            try:
                while chunk := stream.read(8 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
            except OSError as error:  # most likely a full disk
                raise OSError(
                    f"{source.path}: cannot copy the piped data to {spool} ({error.strerror or error})"
                ) from None
        yield replace(source, spool=spool), digest.hexdigest()
    finally:
        spool.unlink(missing_ok=True)


class _ZstdFrames(io.RawIOBase):
    """Decompressed bytes of zstd frames one after another; a stream that stops inside a frame raises
    EOFError (zstandard's stream_reader returns the bytes it has and ends quietly)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.frame = zstandard.ZstdDecompressor().decompressobj()
        self.started = False  # bytes of the current frame have been fed
        self.out = b""
        self.at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self.at >= len(self.out):
            chunk = self.raw.read(1 << 20)
            if not chunk:
                if self.started and not self.frame.eof:
                    raise EOFError("zstd stream ends inside a frame")
                return 0
            self.out, self.at = self._feed(chunk), 0
        n = min(len(buffer), len(self.out) - self.at)
        buffer[:n] = self.out[self.at : self.at + n]
        self.at += n
        return n

    def _feed(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            if self.frame.eof:
                self.frame = zstandard.ZstdDecompressor().decompressobj()
            out.append(self.frame.decompress(chunk))
            self.started = True
            chunk = self.frame.unused_data if self.frame.eof else b""
        return b"".join(out)


def open_bytes(source: Source) -> tuple[io.BufferedIOBase, io.BufferedReader]:
    """(decompressed stream, underlying file): the file's position measures progress."""
    raw = open_file(source.data, source.path)
    magic = raw.peek(4)[:4] if isinstance(raw, io.BufferedReader) else b""
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw), raw
    if magic == b"\x28\xb5\x2f\xfd":
        return io.BufferedReader(_ZstdFrames(raw), buffer_size=1 << 20), raw
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
    """Non-blank lines of a stream; a line over max_bytes is skipped past, keeping its head.

    A line is read in one piece of at most max_bytes + 2 bytes (room for CRLF); one that does not
    end within that piece is over the limit, whatever it ends with.
    """
    number, limit = 0, max_bytes + 2
    while True:
        data = _readline(stream, limit, number)
        if not data:
            return
        if number == 0 and data.startswith(BOM):
            data = data[len(BOM) :]
            if not data.endswith(b"\n"):  # read the bytes the mark took from the piece
                data += _readline(stream, len(BOM), number)
        number += 1
        content = data.rstrip(b"\r\n")
        if data.endswith(b"\n") or len(data) < limit:
            if len(content) > max_bytes:
                yield Line(number, content[:KEPT_HEAD], len(content))
            elif content.strip():
                yield Line(number, content, len(content))
            continue
        size = len(data)
        while not data.endswith(b"\n"):
            data = _readline(stream, 1 << 20, number - 1)
            if not data:
                break
            size += len(data)
        yield Line(number, content[:KEPT_HEAD], size - (len(data) - len(data.rstrip(b"\r\n"))))


def _readline(stream: BinaryIO, limit: int, number: int) -> bytes:
    try:
        return stream.readline(limit)
    except (EOFError, OSError, zstandard.ZstdError) as error:
        raise CorruptStream(number + 1, error) from None


def rows(source: Source, batch_size: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based row, record) of a parquet file or a save_to_disk folder, read in Arrow batches."""
    if source.kind == "parquet":
        import pyarrow.parquet as pq

        batches: Iterable = pq.ParquetFile(source.data).iter_batches(batch_size=batch_size)
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
