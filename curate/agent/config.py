"""A `curate generate` invocation's settings (`GenerateConfig`) and what follows from them alone: the
web_search tool, the backend's options, the agents' settings and the tasks, shared by a run on one
machine (`generate.py`) and on a Ray cluster (`cluster.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .backends import endpoint_options
from .loop import AgentConfig, Task, derive_seed
from .prompts import Prompts
from .questions import Question

TOOLS = ("python", "web_search")


@dataclass(frozen=True)
class GenerateConfig:
    """One `curate generate` invocation (the resolved form is stored with its generation run)."""

    questions: str
    dataset: str
    model: str
    k: int
    backend: str = "transformers"
    endpoint: str | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    max_steps: int = 5
    max_new_tokens: int = 1024
    seed: int = 0
    limit: int | None = None
    tools: tuple[str, ...] = TOOLS
    corpus: str | None = None
    retriever_url: str | None = None
    first_thought_prefix: bool = False
    profile: str = "smolagents"
    system_prompt: str | None = None  # a system prompt template file of yours (default: the packaged one)
    slots: int = 16  # runs in flight (the batch of each generation call)
    write_every: int = 8  # finished runs per store transaction (fewer: less lost to a kill)
    device: str | None = None
    dtype: str | None = None
    request_timeout: float | None = None  # openai: seconds per request before a retry (None: the backend's 600)
    log_out: str | None = None
    adapter: str | None = None  # a LoRA adapter folder applied to the model (transformers, vllm)
    self_consistency: int = 1  # candidate actions per step; > 1: self-consistent action generation
    system_text: str | None = None  # a system prompt used as it is (e.g. the one a student was trained with)
    shared: bool = False  # the data set may hold other runs; this run's samples follow theirs
    unsafe_local_executor: bool = False  # run model code without a jail (where none can be made)
    ray: str | None = None  # a Ray cluster's address (local, auto, host:port): run on its workers
    workers: int | None = None  # Ray workers (default: one per GPU of the cluster, else one per node)


def search_tool(cfg: GenerateConfig) -> tuple[Any, dict[str, Any]]:
    """(the web_search tool or None, its provenance: corpus and its hash, or the server's URL)."""
    if "web_search" not in cfg.tools:
        return None, {}
    from .corpora import make_retriever
    from .search import WebSearch

    retriever = make_retriever(cfg.corpus, cfg.retriever_url)
    found = {"corpus": cfg.corpus, "corpus_hash": getattr(retriever, "hash", None), "retriever_url": cfg.retriever_url}
    return WebSearch(retriever), {k: v for k, v in found.items() if v is not None}


def backend_options(cfg: GenerateConfig) -> dict[str, Any]:
    """The options `make_backend` takes for this configuration's backend."""
    if cfg.backend == "openai":
        return endpoint_options(cfg.backend, cfg.endpoint, cfg.request_timeout)
    return {"device": cfg.device, "dtype": cfg.dtype, "adapter": cfg.adapter}


def agent_config(cfg: GenerateConfig, prompts: Prompts) -> AgentConfig:
    """How this generation run's agents sample and are bounded."""
    return AgentConfig(
        prompts,
        cfg.profile,
        cfg.max_steps,
        cfg.max_new_tokens,
        cfg.temperature,
        cfg.top_p,
        candidates=cfg.self_consistency,
    )


def make_tasks(
    cfg: GenerateConfig, todo: Sequence[tuple[Question, int]], first: int, prefixes: dict[str, str]
) -> list[Task]:
    """The runs to do: each (question, sample) with its own seed and its question's first thought."""
    return [Task((q, first + s), q.text, derive_seed(cfg.seed, q.id, s), prefixes.get(q.id, "")) for q, s in todo]
