"""The `web_search` tool: top-k passages from a local corpus indexed with bm25s, or from a retrieval
server speaking the agent-distillation release's API (how the paper's e5-base-v2 index over
Wikipedia 2018 is reached).

    search = WebSearch(LocalCorpus("corpus.jsonl"))              # JSONL of {id, title, text}
    search = WebSearch(RetrievalServer("http://127.0.0.1:8005"))  # POST /retrieve
    search("Eiffel Tower height")  # '\\nRetrieved documents:\\n\\n===== Document 0, similarity: 12.34 =====\\n"Eiffel Tower"\\n...'

The server's request is `{"queries": [...], "topk": k, "return_scores": true}` and its answer
`{"result": [[{"document": {"id", "contents"}, "score"}, ...] per query]}`, where `contents` is the
passage as `"Title"\\ntext` (the wiki-18 corpus's layout, which the local corpus reproduces).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

TOP_K = 3  # the release's web_search returns 3 documents
_HASH_CHUNK = 1 << 20
# Written last into an index cache: {file: [bytes, sha256]} of what bm25s saved, so that a cache cut
# short or damaged later is found before bm25s reads it (bm25s itself reads a missing params file
# as "build again" and a truncated array as a bare numpy error).
MANIFEST = "curate.manifest.json"


@dataclass(frozen=True)
class Passage:
    """One retrieved document and its score."""

    id: str
    contents: str  # '"Title"\ntext'
    score: float


class Retriever(Protocol):
    """A source of passages; `source` names it for provenance (a corpus hash, or the server URL)."""

    source: str

    def search(self, queries: list[str], k: int) -> list[list[Passage]]:
        """The top-k passages of every query, best first."""
        ...


def format_documents(passages: list[Passage]) -> str:
    """The release's web_search output for one query."""
    blocks = "".join(
        f"\n\n===== Document {i}, similarity: {p.score:.2f} =====\n{p.contents}" for i, p in enumerate(passages)
    )
    return "\nRetrieved documents:" + blocks


class WebSearch:
    """The tool callable: web_search(query) -> the release's text of the top-k passages."""

    def __init__(self, retriever: Retriever, k: int = TOP_K):
        self.retriever, self.k = retriever, k

    @property
    def provenance(self) -> dict[str, object]:
        """What generation records about the tool: its source (corpus hash or server URL) and k."""
        return {"source": self.retriever.source, "k": self.k}

    def __call__(self, query: str) -> str:
        if not isinstance(query, str):
            raise TypeError("Your search query must be a string")
        return format_documents(self.retriever.search([query], self.k)[0])


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes (a corpus's identity in provenance and in its index cache key)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_corpus(path: Path) -> list[dict[str, str]]:
    """The documents of a JSONL corpus; a bad line is named with its file, line and field."""
    docs = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({error.msg})") from None
            if not isinstance(doc, dict):
                raise ValueError(f"{path}:{line_no}: expected an object with id, title, text")
            for key, kinds in (("id", (str, int)), ("title", str), ("text", str)):
                if not isinstance(doc.get(key), kinds):
                    raise ValueError(f"{path}:{line_no}: field {key!r} missing or not text")
            docs.append({"id": str(doc["id"]), "title": str(doc["title"]), "text": doc["text"]})
    if not docs:
        raise ValueError(f"{path}: the corpus has no documents")
    return docs


class LocalCorpus:
    """BM25 over a JSONL corpus of {id, title, text}; the index is built once and cached beside the
    corpus, keyed by the corpus's hash (a changed corpus gets a new index). A damaged cache is
    rebuilt once, said in one line on stderr."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"corpus {self.path} not found")
        self.hash = file_hash(self.path)
        self.source = f"corpus:{self.path.name}:sha256:{self.hash}"
        self.docs = read_corpus(self.path)
        self.index = self._load_or_build(self._index_dir())

    def _load_or_build(self, index_dir: Path):
        import bm25s

        if index_dir.is_dir():
            why = cache_damage(index_dir)
            if why is None:
                try:
                    return bm25s.BM25.load(index_dir, mmap=False, show_progress=False)
                except (OSError, ValueError, KeyError) as error:
                    why = f"bm25s cannot load it ({type(error).__name__}: {' '.join(str(error).split())})"
            print(f"note: bm25s index cache {index_dir}: {why}; rebuilding it", file=sys.stderr)
            _discard(index_dir)
        index = bm25s.BM25()
        index.index(_tokenize([f"{d['title']}\n{d['text']}" for d in self.docs]), show_progress=False)
        _save_atomically(index, index_dir)
        return index

    def _index_dir(self) -> Path:
        """`<corpus>.bm25s-<hash>/` beside the corpus, or in the user cache where that is read-only."""
        beside = self.path.with_name(f"{self.path.name}.bm25s-{self.hash[:16]}")
        if beside.is_dir() or os.access(self.path.parent, os.W_OK):
            return beside
        from ..models import cache_dir

        return cache_dir() / "bm25s" / beside.name

    def search(self, queries: list[str], k: int) -> list[list[Passage]]:
        """The top-k passages of every query by BM25 score, best first; documents that share no
        term with the query (score 0) are left out."""
        k = min(k, len(self.docs))
        ids, scores = self.index.retrieve(_tokenize(queries), k=k, show_progress=False, n_threads=1)
        return [
            [Passage(self.docs[i]["id"], _contents(self.docs[i]), s) for i, s in zip(row, row_scores) if s > 0]
            for row, row_scores in zip(ids.tolist(), scores.tolist())
        ]


def _tokenize(texts: list[str]):
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", show_progress=False)


def _contents(doc: dict[str, str]) -> str:
    return f'"{doc["title"]}"\n{doc["text"]}'


def cache_damage(index_dir: Path) -> str | None:
    """What is wrong with an index cache, checked against its manifest; None when nothing is."""
    try:
        listed = json.loads((index_dir / MANIFEST).read_text())
    except FileNotFoundError:
        return f"{MANIFEST} is missing (written by an older curate, or cut short)"
    except (OSError, ValueError):
        return f"{MANIFEST} is unreadable"
    for name, (size, digest) in sorted(listed.items()):
        path = index_dir / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} is {path.stat().st_size} bytes, not {size}"
        if file_hash(path) != digest:
            return f"{name} does not match its sha256"
    return None


def _discard(index_dir: Path) -> None:
    """Move a damaged cache aside (one rename: a process loading it meanwhile sees all or nothing), then delete it."""
    aside = index_dir.with_name(f".{index_dir.name}.damaged-{os.getpid()}")
    try:
        index_dir.rename(aside)
    except OSError:  # another process moved it first
        return
    shutil.rmtree(aside, ignore_errors=True)


def _save_atomically(index, out: Path) -> None:
    """Write the index and its manifest to a temporary sibling and rename it: a half-written index is
    never loaded."""
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = out.with_name(f".{out.name}.partial-{os.getpid()}")
    index.save(scratch, show_progress=False)
    files = sorted(p for p in scratch.iterdir() if p.is_file())
    (scratch / MANIFEST).write_text(json.dumps({p.name: [p.stat().st_size, file_hash(p)] for p in files}))
    try:
        scratch.rename(out)
    except OSError:
        if not out.is_dir():  # another process finished first: its index is the same
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class RetrievalServer:
    """A retrieval server speaking the release's API (`POST {url}/retrieve`)."""

    def __init__(self, url: str, timeout: float = 60.0):
        import requests

        self.url = url.rstrip("/")
        if not self.url.endswith("/retrieve"):
            self.url += "/retrieve"
        self.source = f"server:{self.url}"
        self.timeout = timeout
        self._session = requests.Session()

    def search(self, queries: list[str], k: int) -> list[list[Passage]]:
        """One request for all queries; the server's scores as it sends them."""
        response = self._session.post(
            self.url, json={"queries": queries, "topk": k, "return_scores": True}, timeout=self.timeout
        )
        response.raise_for_status()
        try:
            result = response.json()["result"]
            return [
                [
                    Passage(str(hit["document"].get("id", "")), hit["document"]["contents"], float(hit["score"]))
                    for hit in hits
                ]
                for hits in result
            ]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{self.url}: unexpected response ({type(error).__name__}: {error})") from None
