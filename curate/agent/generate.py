"""`curate generate`: K agent runs per question, written into the store and graded as they land.

The job: load the questions, identify the generation run (a hash of everything that decides a
sample: data set, model, backend, sampling, base seed, step and token limits, tools, corpus, prompts,
marker profile), find the (question, sample) pairs the store does not hold yet, and run them through
`run_agents`, every in-flight run advancing together. Sample s of question q runs with seed
`derive_seed(base seed, q, s)`: the K samples differ, and each can be regenerated alone.

Finished runs are graded (the grader `auto` picks for the whole question set) and written a few at a
time, each batch one transaction that opens the store only for that moment; a killed job loses at
most the runs not yet written, and the same command resumes: trajectory ids are one per (data set,
question, sample), so nothing is ever duplicated. `K` and `--limit` may grow between invocations
of one run (more samples or questions, same seeds); anything else is a new run and needs its own
data set, unless the run is `shared`: then the data set may hold other runs (`curate eval` puts every
model's runs on a benchmark into one data set) and this run's samples take the sample indices after
theirs (recorded as its `first_sample`; seeds still derive from the sample's place in this run).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from .. import queries
from ..store import Store, claimed
from ..versions import code_version
from .backends import Backend, make_backend
from .config import TOOLS, GenerateConfig, agent_config, backend_options, make_tasks, search_tool
from .loop import run_agents
from .prompts import Prompts, load_prompts
from .questions import Question, load_questions
from .records import stored_records
from .writer import Writer, first_thought_rows, stored_first_thoughts, write_first_thoughts

# The code that decides a sample: the runtime (loop, backends, sandbox, prompts), rendering and markers, the engine.
AGENT_CODE = ("agent", "render", "engine")


@dataclass
class GenerateSummary:
    """What one invocation did and what the run holds now."""

    generation_run: str
    dataset: str
    questions: int
    k: int
    written: int = 0  # runs written by this invocation
    skipped: int = 0  # (question, sample) pairs already in the store
    tokens: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    sandbox: str = ""  # the python tool's isolation, in one line (PythonSandbox.describe)
    workers: list[str] = field(default_factory=list)  # with --ray: one line per worker
    redacted: int = 0  # secret values of curate's environment replaced in observations

    def line(self) -> str:
        """One human-readable summary line."""
        c = self.counts
        rate = f"{self.tokens / self.seconds:.1f}" if self.seconds else "-"
        return (
            f"{self.dataset}: {self.questions} questions x {self.k}: {self.written} runs generated, "
            f"{self.skipped} already stored; the run holds {c.get('trajectories', 0)} trajectories, "
            f"{c.get('correct', 0)} correct, {c.get('clean', 0)} clean, parse_error {c.get('parse_error', 0)}, "
            f"max_steps {c.get('max_steps', 0)}, exec_error {c.get('exec_error', 0)} "
            f"({self.tokens} tokens in {self.seconds:.0f} s, {rate} tokens/s)"
        )


def adapter_hash(adapter: str | Path) -> str:
    """sha256 over a LoRA adapter folder's config and weight files."""
    from ..score import weights_hash

    folder = Path(adapter)
    return hashlib.sha256((folder / "adapter_config.json").read_bytes() + weights_hash(folder).encode()).hexdigest()


def generate(
    db: str | Path, cfg: GenerateConfig, progress: bool = True, backend: Backend | None = None
) -> GenerateSummary:
    """Run the missing (question, sample) pairs of this generation run into the store.

    `backend` replaces the one cfg names (it is then not closed here).
    """
    _check(cfg)
    questions = load_questions(cfg.questions, cfg.limit)
    search, found = search_tool(cfg)
    prompts = load_prompts([t for t in cfg.tools if t != "python"], _imports(), cfg.system_prompt, cfg.system_text)
    provenance = {"tools": ",".join(cfg.tools), **found}
    run_id, identity = _identity(cfg, prompts, provenance)
    # One process per run: two would sample the same (question, sample) pairs and collide in the store.
    with claimed(db, run_id, f"generation run {run_id} is being generated"):
        started = datetime.now()
        with Store(db) as store, store.transaction() as con:
            first = _claim(con, cfg, run_id)
            _register(con, cfg, run_id, identity, prompts, questions, started, first)
            done = {
                (q, s) for q, s in con.execute(queries.sql_text("generate/stored_samples"), {"run": run_id}).fetchall()
            }
        todo = [(q, s) for q in questions for s in range(cfg.k) if (q.id, first + s) not in done]
        summary = GenerateSummary(
            run_id, cfg.dataset, len(questions), cfg.k, skipped=cfg.k * len(questions) - len(todo)
        )
        clock = time.perf_counter()
        if todo:
            _run(db, cfg, run_id, prompts, todo, first, search, summary, progress, backend)
        summary.seconds = time.perf_counter() - clock
        with Store(db) as store, store.transaction() as con:
            counts = queries.frame(con, queries.sql_text("generate/run_counts"), {"run": run_id}).row(0, named=True)
            con.execute(
                queries.sql_text("generate/finish_run"),
                {
                    "run": run_id,
                    "now": datetime.now(),
                    "seconds": summary.seconds,
                    **{k: counts[k] for k in ("trajectories", "correct", "clean", "tokens")},
                },
            ).fetchall()
        summary.counts = counts
        if cfg.log_out:
            write_log(db, cfg.dataset, cfg.log_out)
        return summary


def _check(cfg: GenerateConfig) -> None:
    if cfg.k < 1:
        raise ValueError(f"--k {cfg.k}: expected at least 1 sample per question")
    if unknown := sorted(set(cfg.tools) - set(TOOLS)):
        raise ValueError(f"--tools: unknown tool(s) {', '.join(unknown)} (known: {', '.join(TOOLS)})")
    if "python" not in cfg.tools:
        raise ValueError("--tools must include python: actions are Python code")
    if "web_search" in cfg.tools and not (cfg.corpus or cfg.retriever_url):
        raise ValueError("web_search needs --corpus FILE or --retriever-url URL (or drop it: --tools python)")
    if cfg.corpus and cfg.retriever_url:
        raise ValueError("give --corpus or --retriever-url, not both")
    if (cfg.corpus or cfg.retriever_url) and "web_search" not in cfg.tools:
        raise ValueError("--corpus and --retriever-url serve web_search, which --tools leaves out")
    if cfg.self_consistency < 1:
        raise ValueError(f"--self-consistency {cfg.self_consistency}: expected at least 1 candidate per step")
    if cfg.adapter is not None:
        if cfg.backend == "openai":
            raise ValueError(
                "--adapter with --backend openai: the server applies adapters; serve it under a "
                "name (vLLM: --enable-lora --lora-modules NAME=DIR) and pass that name as --model"
            )
        if not (Path(cfg.adapter) / "adapter_config.json").is_file():
            raise FileNotFoundError(f"--adapter {cfg.adapter}: no adapter_config.json (not a peft adapter folder)")


def _imports() -> list[str]:
    """The modules the sandbox lets code import (smolagents' safe modules and ours), for the prompt."""
    from smolagents.utils import BASE_BUILTIN_MODULES

    from .sandbox import DEFAULT_IMPORTS

    return sorted({*BASE_BUILTIN_MODULES, *(m.removesuffix(".*") for m in DEFAULT_IMPORTS)})


def _identity(cfg: GenerateConfig, prompts: Prompts, provenance: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(run id, the settings it hashes): everything that decides a sample, nothing that only sizes the job."""
    from ..models import student_key

    identity = {
        "dataset": cfg.dataset,
        "model": student_key(cfg.model) if cfg.backend == "transformers" else cfg.model,
        "backend": cfg.backend,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "seed": cfg.seed,
        "max_steps": cfg.max_steps,
        "max_new_tokens": cfg.max_new_tokens,
        "profile": cfg.profile,
        "first_thought_prefix": cfg.first_thought_prefix,
        "prompts": prompts.hash,
        **provenance,
        # Later settings enter only when used, so runs made before them keep their ids.
        **({"adapter": adapter_hash(cfg.adapter)} if cfg.adapter else {}),
        **({"self_consistency": cfg.self_consistency} if cfg.self_consistency > 1 else {}),
    }
    digest = hashlib.blake2b(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS), digest_size=6).hexdigest()
    return f"gen-{digest}", identity


def _claim(con: Any, cfg: GenerateConfig, run_id: str) -> int:
    """The run's first sample index; refuse a data set where its samples would collide with others'."""
    if cfg.shared:
        first, k = con.execute(
            queries.sql_text("generate/first_sample"), {"dataset": cfg.dataset, "run": run_id}
        ).fetchone()
        if k is not None and k != cfg.k:
            raise ValueError(
                f"--k {cfg.k}: this run holds {k} samples per question in the shared data set "
                f"{cfg.dataset!r}, and other runs' samples follow them"
            )
        return first
    other = con.execute(queries.sql_text("generate/other_sources"), {"dataset": cfg.dataset, "run": run_id}).fetchall()
    if other:
        what = ", ".join(f"generation run {r}" if r else "ingested logs" for (r,) in other)
        raise ValueError(
            f"data set {cfg.dataset!r} already holds trajectories from {what}, generated or ingested "
            "with other settings; give a new --dataset (the same command resumes its own run)"
        )
    return 0


def _register(
    con: Any,
    cfg: GenerateConfig,
    run_id: str,
    identity: dict[str, Any],
    prompts: Prompts,
    questions: Sequence[Question],
    started: datetime,
    first: int,
) -> None:
    from ..grade import resolve_grader

    grader = resolve_grader([q.gold for q in questions])
    con.execute(
        queries.sql_text("generate/register_run"),
        {
            "run": run_id,
            "dataset": cfg.dataset,
            "questions_file": str(cfg.questions),
            "model": identity["model"],
            "backend": cfg.backend,
            "k": cfg.k,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "max_steps": cfg.max_steps,
            "max_new_tokens": cfg.max_new_tokens,
            "seed": cfg.seed,
            "tools": identity["tools"],
            "profile": cfg.profile,
            "prompt_hash": prompts.hash,
            "system_prompt": prompts.system,
            "corpus": identity.get("corpus"),
            "corpus_hash": identity.get("corpus_hash"),
            "retriever_url": identity.get("retriever_url"),
            "first_thought_prefix": cfg.first_thought_prefix,
            "grader": grader,
            "code_version": code_version(*AGENT_CODE),
            "config": orjson.dumps(asdict(cfg)).decode(),
            "started": started,
            "first_sample": first,
        },
    ).fetchall()
    rows = [
        (q.id, q.text, q.gold, len(q.text.split()), orjson.dumps(q.meta).decode() if q.meta else None)
        for q in questions
    ]
    con.executemany(
        "INSERT INTO questions (dataset, question_id, text, gold_answer, words, source_meta) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        [(cfg.dataset, *r) for r in rows],
    )


def _run(
    db: str | Path,
    cfg: GenerateConfig,
    run_id: str,
    prompts: Prompts,
    todo: list[tuple[Question, int]],
    first: int,
    search: Any,
    summary: GenerateSummary,
    progress: bool,
    given: Backend | None,
) -> None:
    from contextlib import closing

    from tqdm import tqdm

    from .sandbox import PythonSandbox

    if cfg.ray:
        from .cluster import generate_on_ray

        generate_on_ray(db, cfg, run_id, prompts, todo, first, summary, progress)
        return
    backend = given or make_backend(cfg.backend, cfg.model, **backend_options(cfg))
    try:
        unique = list({q.id: q for q, _ in todo}.values())
        prefixes = _first_thoughts(db, cfg, run_id, prompts, backend, unique) if cfg.first_thought_prefix else {}
        config = agent_config(cfg, prompts)
        tasks = make_tasks(cfg, todo, first, prefixes)
        writer = Writer(db, cfg, run_id, backend.model_id)
        bar = tqdm(total=len(todo), desc=f"generate {cfg.dataset}", unit=" runs", disable=not progress)
        clock = time.perf_counter()
        tools = {"web_search": search} if search else {}
        try:
            with (
                PythonSandbox(tools=tools, unsafe=cfg.unsafe_local_executor) as sandbox,
                closing(run_agents(tasks, backend, sandbox, config, cfg.slots)) as runs,
            ):
                summary.sandbox = sandbox.describe()
                for run in runs:
                    writer.add(run)
                    summary.written += 1
                    summary.tokens += run.tokens
                    bar.set_postfix_str(f"{summary.tokens / (time.perf_counter() - clock):.1f} tokens/s")
                    bar.update(1)
                summary.redacted = sandbox.redacted
        finally:
            writer.flush()
            bar.close()
    finally:
        if given is None:
            backend.close()


def _first_thoughts(
    db: str | Path, cfg: GenerateConfig, run_id: str, prompts: Prompts, backend: Backend, questions: list[Question]
) -> dict[str, str]:
    """Per question, the first paragraph of a tool-free greedy answer, as the start of the first Thought."""
    stored = stored_first_thoughts(db, run_id)
    missing = [q for q in questions if q.id not in stored]
    for start in range(0, len(missing), cfg.slots):
        rows = first_thought_rows(cfg, run_id, prompts, backend, missing[start : start + cfg.slots])
        write_first_thoughts(db, rows)
        stored.update({qid: prefix for _r, qid, prefix, _t in rows})
    return stored


def write_log(db: str | Path, dataset: str, out: str | Path) -> int:
    """Write a data set's generated runs as agent-distillation JSONL (what `curate ingest` reads); the count."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = out.with_name(f".{out.name}.partial-{os.getpid()}")
    n = 0
    with Store(db, read_only=True) as store, scratch.open("wb") as f:
        for record in stored_records(store.con, dataset):
            f.write(orjson.dumps(record) + b"\n")
            n += 1
    scratch.replace(out)
    return n
