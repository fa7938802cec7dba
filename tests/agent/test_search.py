"""web_search: bm25s over a local corpus, a real HTTP retrieval server, the wiki-summaries corpus."""

from __future__ import annotations

import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from bm25s.stopwords import STOPWORDS_EN

from curate.agent.corpora import make_retriever, make_search, resolve_corpus
from curate.agent.sandbox import Limits, PythonSandbox
from curate.agent.search import MANIFEST, LocalCorpus, RetrievalServer, WebSearch, file_hash, format_documents

DOCS = [
    {"id": "d1", "title": "Eiffel Tower", "text": "The Eiffel Tower is a wrought-iron lattice tower in Paris."},
    {"id": "d2", "title": "Gustave Eiffel", "text": "Gustave Eiffel was a French civil engineer."},
    {"id": "d3", "title": "Louvre", "text": "The Louvre is the world's most visited art museum, in Paris."},
    {"id": "d4", "title": "Berlin", "text": "Berlin is the capital and largest city of Germany."},
]


def _write(path, docs):
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def _bm25(query: str, docs: list[dict], k1: float = 1.5, b: float = 0.75) -> list[float]:
    """Lucene's BM25 (since Lucene 8 without the constant (k1 + 1) factor) of title + text, tokens
    as \\w\\w+ lower-cased without English stopwords."""

    def tokens(text):
        return [t for t in re.findall(r"\b\w\w+\b", text.lower()) if t not in STOPWORDS_EN]

    bodies = [tokens(f"{d['title']}\n{d['text']}") for d in docs]
    avgdl = sum(map(len, bodies)) / len(bodies)
    scores = []
    for body in bodies:
        score = 0.0
        for term in set(tokens(query)):
            df = sum(term in other for other in bodies)
            tf = body.count(term)
            idf = math.log(1 + (len(bodies) - df + 0.5) / (df + 0.5))
            score += idf * tf / (tf + k1 * (1 - b + b * len(body) / avgdl))
        scores.append(score)
    return scores


def test_local_corpus_ranks_by_bm25_and_formats_like_the_release(tmp_path):
    corpus = LocalCorpus(_write(tmp_path / "c.jsonl", DOCS))
    expected = _bm25("Eiffel tower Paris", DOCS)
    [hits] = corpus.search(["Eiffel tower Paris"], 3)
    order = sorted(range(len(DOCS)), key=lambda i: -expected[i])[:3]
    assert [h.id for h in hits] == [DOCS[i]["id"] for i in order] == ["d1", "d2", "d3"]
    assert [h.score for h in hits] == pytest.approx([expected[i] for i in order], rel=1e-5)
    text = WebSearch(corpus, k=2)("Eiffel tower Paris")
    assert text == (
        "\nRetrieved documents:"
        f'\n\n===== Document 0, similarity: {expected[0]:.2f} =====\n"Eiffel Tower"\n{DOCS[0]["text"]}'
        f'\n\n===== Document 1, similarity: {expected[1]:.2f} =====\n"Gustave Eiffel"\n{DOCS[1]["text"]}'
    )
    assert corpus.source == f"corpus:c.jsonl:sha256:{file_hash(tmp_path / 'c.jsonl')}"
    search = make_search(corpus=str(tmp_path / "c.jsonl"), k=2)
    assert search("Eiffel tower Paris") == text and search.provenance == {"source": corpus.source, "k": 2}


def test_index_is_cached_beside_the_corpus_by_hash(tmp_path):
    path = _write(tmp_path / "c.jsonl", DOCS)
    first = LocalCorpus(path)
    index_dir = tmp_path / f"c.jsonl.bm25s-{first.hash[:16]}"
    assert (index_dir / "params.index.json").is_file()
    assert LocalCorpus(path).search(["Berlin"], 1) == first.search(["Berlin"], 1)
    _write(path, DOCS[:3])  # a changed corpus gets its own index
    changed = LocalCorpus(path)
    assert changed.hash != first.hash and (tmp_path / f"c.jsonl.bm25s-{changed.hash[:16]}").is_dir()
    assert changed.search(["Berlin capital", "Louvre"], 4) == [[], changed.search(["Louvre"], 1)[0]]


def _stamps(index_dir):
    """Each cache file's inode and modification time: a rebuilt cache has new files."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(index_dir.iterdir())}


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (
            lambda d: (d / "data.csc.index.npy").write_bytes((d / "data.csc.index.npy").read_bytes()[:100]),
            "data.csc.index.npy is 100 bytes, not {size}",
        ),
        (lambda d: (d / "params.index.json").unlink(), "params.index.json is missing"),
        (
            lambda d: (d / "vocab.index.json").write_text(
                (d / "vocab.index.json").read_text().replace("eiffel", "eiffle")
            ),
            "vocab.index.json does not match its sha256",
        ),
        (lambda d: (d / MANIFEST).unlink(), f"{MANIFEST} is missing (written by an older curate, or cut short)"),
    ],
    ids=["truncated", "no-params", "changed", "no-manifest"],
)
def test_a_damaged_index_cache_is_rebuilt_once_and_said(tmp_path, capfd, damage, why):
    path = _write(tmp_path / "c.jsonl", DOCS)
    index_dir = tmp_path / f"c.jsonl.bm25s-{LocalCorpus(path).hash[:16]}"
    expected = LocalCorpus(path).search(["Eiffel tower Paris"], 3)
    size = (index_dir / "data.csc.index.npy").stat().st_size
    damage(index_dir)
    capfd.readouterr()
    assert LocalCorpus(path).search(["Eiffel tower Paris"], 3) == expected
    assert capfd.readouterr().err == (f"note: bm25s index cache {index_dir}: {why.format(size=size)}; rebuilding it\n")
    stamps = _stamps(index_dir)
    assert "params.index.json" in stamps
    assert LocalCorpus(path).search(["Eiffel tower Paris"], 3) == expected
    assert capfd.readouterr().err == "" and _stamps(index_dir) == stamps  # loaded, not rebuilt


def test_bad_corpus_lines_are_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(DOCS[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        LocalCorpus(path)
    path.write_text(json.dumps({"id": "x", "title": "T"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: field 'text' missing or not text"):
        LocalCorpus(path)
    with pytest.raises(ValueError, match="exactly one of --corpus"):
        make_retriever()
    with pytest.raises(FileNotFoundError, match="not a built-in corpus"):
        resolve_corpus(str(tmp_path / "missing.jsonl"))


class _Handler(BaseHTTPRequestHandler):
    """The release's retrieval server API over a LocalCorpus (`server.corpus`)."""

    def do_POST(self):
        if self.path != "/retrieve":
            self.send_error(404)
            return
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(request)
        if request["queries"] == ["fail"]:
            self.send_error(500, "index offline")
            return
        results = self.server.corpus.search(request["queries"], request["topk"])
        body = {
            "result": [
                [{"document": {"id": p.id, "contents": p.contents}, "score": p.score} for p in hits] for hits in results
            ]
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.corpus, httpd.requests = LocalCorpus(_write(tmp_path / "c.jsonl", DOCS)), []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_retrieval_server_api(server):
    url = f"http://127.0.0.1:{server.server_address[1]}"
    remote = RetrievalServer(url)
    assert remote.search(["Louvre museum", "Berlin"], 2) == server.corpus.search(["Louvre museum", "Berlin"], 2)
    assert server.requests[-1] == {"queries": ["Louvre museum", "Berlin"], "topk": 2, "return_scores": True}
    assert WebSearch(make_retriever(retriever_url=url))("Gustave Eiffel") == WebSearch(server.corpus)("Gustave Eiffel")
    assert server.requests[-1]["topk"] == 3
    with pytest.raises(Exception, match="500"):
        remote.search(["fail"], 1)


def test_web_search_inside_the_sandbox(tmp_path):
    search = WebSearch(LocalCorpus(_write(tmp_path / "c.jsonl", DOCS)))
    with PythonSandbox(Limits(seconds=5), tools={"web_search": search}, workers=1) as sb:
        [r] = sb.run([(sb.open(), "docs = web_search(query='capital of Germany')\nprint(docs)")])
    assert r.error is None and r.logs == search("capital of Germany") + "\n"
    assert "===== Document 0, similarity:" in r.logs and '"Berlin"' in r.logs.split("Document 1")[0]


def test_wiki_summaries_is_the_packaged_wikipedia_corpus():
    path = resolve_corpus("wiki-summaries")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 10033
    assert json.loads(lines[0]).keys() == {"id", "title", "text"}
    [hits] = make_retriever(corpus="wiki-summaries").search(["Eiffel Tower Paris lattice"], 3)
    assert hits[0].id == "Eiffel Tower"
    assert hits[0].contents.startswith('"Eiffel Tower"\nThe Eiffel Tower is a lattice tower')
    assert format_documents(hits).startswith("\nRetrieved documents:\n\n===== Document 0, similarity: ")
