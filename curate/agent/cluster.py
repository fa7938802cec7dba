"""`curate generate --ray` (and `curate eval --ray`): shards of whole questions on the workers of
a Ray cluster.

Each worker builds the teacher backend, the web_search tool and a python sandbox (its own jail)
once, then takes shard after shard: a shard's missing first thoughts, then every (question,
sample) of it through the agent loop, each with the seed a single-process run gives it. The runs
come back to the driver, which grades and writes them as `curate generate` does on one machine,
so the store holds the same rows; the driver alone writes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..cluster.ray import Shard, connect, default_workers, node_id, run_shards
from .backends import make_backend
from .loop import AgentRun, run_agents
from .prompts import Prompts
from .questions import Question


class GenerateWorker:
    """A generation worker: the backend, web_search and the sandbox, built once on its node."""

    def __init__(self, cfg: Any, prompts: Prompts, search_hash: str | None) -> None:
        from .config import agent_config, backend_options, search_tool
        from .sandbox import PythonSandbox

        search, found = search_tool(cfg)
        if found.get("corpus_hash") != search_hash:
            raise ValueError(
                f"the web_search corpus on node {node_id()[:8]} ({found.get('corpus_hash')}) is not the "
                f"driver's ({search_hash}): every node must hold the same corpus"
            )
        self.cfg, self.prompts, self.config = cfg, prompts, agent_config(cfg, prompts)
        self.backend = make_backend(cfg.backend, cfg.model, **backend_options(cfg))
        self.sandbox = PythonSandbox(tools={"web_search": search} if search else {}, unsafe=cfg.unsafe_local_executor)

    def run(self, payload: tuple) -> tuple[list[tuple], list[AgentRun], dict[str, Any]]:
        """A shard: (run id, its (question, sample) pairs, the first sample index, the first thoughts
        the store holds) -> (new first-thought rows, the finished runs, what this worker is)."""
        from .config import make_tasks
        from .writer import first_thought_rows

        run_id, todo, first, prefixes = payload
        rows: list[tuple] = []
        if self.cfg.first_thought_prefix:
            missing = list({q.id: q for q, _ in todo if q.id not in prefixes}.values())
            for start in range(0, len(missing), self.cfg.slots):
                rows += first_thought_rows(
                    self.cfg, run_id, self.prompts, self.backend, missing[start : start + self.cfg.slots]
                )
            prefixes = {**prefixes, **{qid: prefix for _r, qid, prefix, _t in rows}}
        redacted = self.sandbox.redacted
        tasks = make_tasks(self.cfg, todo, first, prefixes)
        runs = list(run_agents(tasks, self.backend, self.sandbox, self.config, self.cfg.slots))
        facts = {
            "model_id": self.backend.model_id,
            "sandbox": self.sandbox.describe(),
            "redacted": self.sandbox.redacted - redacted,
        }
        return rows, runs, facts


def shards(todo: Sequence[tuple[Question, int]], size: int) -> Iterator[list[tuple[Question, int]]]:
    """Whole questions (all their samples) in groups of at least `size` runs, in order."""
    group: list[tuple[Question, int]] = []
    for i, pair in enumerate(todo):
        group.append(pair)
        ends_question = i + 1 == len(todo) or todo[i + 1][0].id != pair[0].id
        if ends_question and len(group) >= size:
            yield group
            group = []
    if group:
        yield group


def generate_on_ray(
    db: str | Path,
    cfg: Any,
    run_id: str,
    prompts: Prompts,
    todo: list[tuple[Question, int]],
    first: int,
    summary: Any,
    progress: bool,
) -> None:
    """Run `todo` on the cluster's workers; the driver stores first thoughts and runs as they come."""
    from tqdm import tqdm

    from .config import search_tool
    from .writer import Writer, stored_first_thoughts, write_first_thoughts

    ray = connect(cfg.ray)
    workers = cfg.workers or default_workers(ray)
    _, found = search_tool(cfg)
    known = stored_first_thoughts(db, run_id) if cfg.first_thought_prefix else {}
    writer: list[Writer] = []  # made at the first result, with the teacher id the workers' backend gives
    clock = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"generate {cfg.dataset}", unit=" runs", disable=not progress)

    def work() -> Iterator[Shard]:
        for n, group in enumerate(shards(todo, cfg.slots)):
            prefixes = {q.id: known[q.id] for q, _ in group if q.id in known}
            yield Shard(f"{n} ({group[0][0].id} ...)", len(group), (run_id, group, first, prefixes))

    def taken(shard: Shard, value: tuple[list[tuple], list[AgentRun], dict[str, Any]]) -> int:
        rows, runs, facts = value
        write_first_thoughts(db, rows)
        if not writer:
            writer.append(Writer(db, cfg, run_id, facts["model_id"]))
        for run in runs:
            writer[0].add(run)
            summary.written += 1
            summary.tokens += run.tokens
        summary.sandbox, summary.redacted = facts["sandbox"], summary.redacted + facts["redacted"]
        bar.set_postfix_str(f"{summary.tokens / (time.perf_counter() - clock):.1f} tokens/s")
        return sum(run.tokens for run in runs)

    try:
        done = run_shards(
            ray, GenerateWorker, (cfg, prompts, found.get("corpus_hash")), "run", work(), workers, taken, bar.update
        )
        summary.workers = [w.line("tokens") for w in done.workers]
    finally:
        if writer:
            writer[0].flush()
        bar.close()
