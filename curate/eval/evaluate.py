"""`curate eval`: pass@1 of a model as a CodeAct agent on benchmark questions (the paper's Table 2).

An evaluation is generation at temperature 0 with K = 1, graded. Each benchmark is one `curate
generate` run (`generate.generate`, the same runtime, store writer, grading and resume) into data
set `eval:<benchmark>`, which every model evaluated on that benchmark shares (each run's samples
take the next free sample index), so stats, render, analyses and SQL read evaluation runs as they
read teacher runs. An `eval_runs` row per (eval run, benchmark) records model, adapter hash,
protocol, system prompt, grader, code version and the result.

The eval run id is a hash of what decides its answers (model, adapter, backend, protocol, prompt,
tools, grader): the same command resumes it (a killed run continues where its benchmarks stopped),
and more benchmarks or a larger --limit extend it. Math benchmarks are graded by math-verify, QA
benchmarks by the qa grader or an LLM judge (`--grader judge`); a benchmark generated under one
grader and evaluated under another is graded again, the trajectories reused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from .. import queries
from ..agent.backends import Backend
from ..store import Store
from .benchmarks import Benchmark, TrainedPrompt, resolve_benchmarks, trained_prompt

DEFAULT_CORPUS = "wiki-summaries"


@dataclass(frozen=True)
class EvalConfig:
    """One `curate eval` invocation."""

    model: str
    benchmarks: str  # comma-separated names, all, or question file paths
    adapter: str | None = None
    limit: int | None = None
    max_steps: int = 5
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 1024
    seed: int = 0
    backend: str = "transformers"
    endpoint: str | None = None
    self_consistency: int = 1
    tools: tuple[str, ...] = ("python", "web_search")
    corpus: str | None = None  # default with web_search: the built-in wiki-summaries
    retriever_url: str | None = None
    grader: str = "auto"  # for QA benchmarks: auto (qa) | qa | judge; math benchmarks: math-verify
    judge_model: str | None = None
    judge_backend: str = "transformers"
    judge_endpoint: str | None = None
    system_prompt: str | None = None  # a system prompt template file (overrides the trained one)
    name: str | None = None  # the run's label in tables
    slots: int = 16
    write_every: int = 8
    device: str | None = None
    dtype: str | None = None
    request_timeout: float | None = None  # openai (model or judge): seconds per request before a retry
    unsafe_local_executor: bool = False  # run model code without a jail (where none can be made)
    ray: str | None = None  # a Ray cluster's address: each benchmark's generation runs on its workers
    workers: int | None = None


@dataclass
class BenchmarkResult:
    """pass@1 on one benchmark, and what produced it."""

    name: str
    n: int
    correct: int
    grader: str
    generation_run: str
    predictions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pass_at_1(self) -> float:
        """Percent of the questions answered correctly."""
        return 100.0 * self.correct / self.n if self.n else 0.0


@dataclass
class EvalResult:
    """An eval run: its id, label, prompt, and one result per benchmark."""

    eval_run: str
    name: str
    model: str
    adapter: str | None
    prompt: TrainedPrompt
    benchmarks: list[BenchmarkResult]

    @property
    def average(self) -> float:
        """Mean pass@1 over the benchmarks (every benchmark weighs the same, as in Table 2)."""
        return sum(b.pass_at_1 for b in self.benchmarks) / len(self.benchmarks) if self.benchmarks else 0.0

    def results_json(self) -> dict[str, Any]:
        """The results.json document."""
        return {
            "eval_run": self.eval_run,
            "name": self.name,
            "model": self.model,
            "adapter": self.adapter,
            "system_prompt": self.prompt.source,
            "benchmarks": {
                b.name: {
                    "n": b.n,
                    "correct": b.correct,
                    "pass@1": round(b.pass_at_1, 4),
                    "grader": b.grader,
                    "generation_run": b.generation_run,
                }
                for b in self.benchmarks
            },
            "average": round(self.average, 4),
        }


class _Lazy:
    """A backend built on first use, so a benchmark already in the store loads no model."""

    def __init__(self, build: Callable[[], Backend]) -> None:
        self._build = build
        self._made: Backend | None = None

    def __getattr__(self, name: str) -> Any:
        if self._made is None:
            self._made = self._build()
        return getattr(self._made, name)

    def close(self) -> None:
        if self._made is not None:
            self._made.close()


def evaluate(
    db: str | Path, cfg: EvalConfig, progress: bool = True, backend: Backend | None = None, judge: Backend | None = None
) -> EvalResult:
    """Evaluate the model on every benchmark (resuming what the store holds); `backend` / `judge`
    replace the ones cfg names (they are then not closed here)."""
    from ..agent.backends import endpoint_options, make_backend
    from ..agent.generate import generate

    benchmarks = resolve_benchmarks(cfg.benchmarks)
    _check(cfg)
    with Store(db):  # a bad --db fails here, before any model or index is built
        pass
    prompt = trained_prompt(cfg.model, cfg.adapter)
    if cfg.system_prompt:
        prompt = TrainedPrompt(None, f"file: {cfg.system_prompt}", prompt.profile)
    eval_run, identity = _identity(cfg, prompt)
    template = _generate_config(cfg, prompt)
    model = backend or _Lazy(lambda: make_backend(cfg.backend, cfg.model, **_options(template)))
    grader_judge = judge
    if grader_judge is None and (judge_model := cfg.judge_model) is not None:  # given with --grader judge only
        grader_judge = _Lazy(
            lambda: make_backend(
                cfg.judge_backend,
                judge_model,
                **endpoint_options(cfg.judge_backend, cfg.judge_endpoint, cfg.request_timeout),
            )
        )
    results = []
    try:
        for bench in benchmarks:
            started = datetime.now()
            gen = _for_benchmark(template, bench, cfg)
            summary = generate(db, gen, progress=progress, backend=model)
            result = _grade(db, bench, gen, summary.generation_run, cfg, grader_judge)
            _record(db, eval_run, bench, gen, result, cfg, identity, prompt, started)
            results.append(result)
    finally:
        if backend is None:
            model.close()
        if judge is None and grader_judge is not None:
            grader_judge.close()
    return EvalResult(eval_run, cfg.name or _label(cfg), cfg.model, cfg.adapter, prompt, results)


def _check(cfg: EvalConfig) -> None:
    if cfg.grader not in ("auto", "qa", "judge"):
        raise ValueError(f"--grader {cfg.grader}: expected auto, qa or judge (math benchmarks use math-verify)")
    if (cfg.grader == "judge") != (cfg.judge_model is not None):
        raise ValueError("--grader judge needs --judge-model, and --judge-model is used only with --grader judge")
    if (cfg.corpus or cfg.retriever_url) and "web_search" not in cfg.tools:
        raise ValueError("--corpus and --retriever-url serve web_search, which --tools leaves out")
    if cfg.adapter is not None and not (Path(cfg.adapter) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"--adapter {cfg.adapter}: no adapter_config.json (not a peft adapter folder)")


def _label(cfg: EvalConfig) -> str:
    model = Path(cfg.model).name or cfg.model
    return f"{model} + {Path(cfg.adapter).resolve().name}" if cfg.adapter else model


def _generate_config(cfg: EvalConfig, prompt: TrainedPrompt):
    """The generation settings every benchmark of the run shares (questions and data set set per benchmark)."""
    from ..agent.generate import GenerateConfig

    search = "web_search" in cfg.tools
    return GenerateConfig(
        questions="",
        dataset="",
        model=cfg.model,
        k=1,
        backend=cfg.backend,
        endpoint=cfg.endpoint,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_steps=cfg.max_steps,
        max_new_tokens=cfg.max_new_tokens,
        seed=cfg.seed,
        limit=cfg.limit,
        tools=cfg.tools,
        corpus=(cfg.corpus or (None if cfg.retriever_url else DEFAULT_CORPUS)) if search else None,
        retriever_url=cfg.retriever_url if search else None,
        profile=prompt.profile or "smolagents",
        system_prompt=cfg.system_prompt,
        system_text=prompt.text,
        slots=cfg.slots,
        write_every=cfg.write_every,
        device=cfg.device,
        dtype=cfg.dtype,
        request_timeout=cfg.request_timeout,
        # openai: the server applies the adapter (served under --model); the folder gives prompt and hash
        adapter=cfg.adapter if cfg.backend != "openai" else None,
        self_consistency=cfg.self_consistency,
        shared=True,
        unsafe_local_executor=cfg.unsafe_local_executor,
        ray=cfg.ray,
        workers=cfg.workers,
    )


def _for_benchmark(template, bench: Benchmark, cfg: EvalConfig):
    from dataclasses import replace

    return replace(template, questions=str(bench.path), dataset=f"eval:{bench.name}")


def _options(gen) -> dict[str, Any]:
    from ..agent.config import backend_options

    return backend_options(gen)


def _identity(cfg: EvalConfig, prompt: TrainedPrompt) -> tuple[str, dict[str, Any]]:
    """(eval run id, the settings it hashes): what decides the answers and their grades, not which
    benchmarks, how many questions or how the job is sized."""
    from ..agent.generate import adapter_hash
    from ..models import student_key

    identity = {
        "model": student_key(cfg.model) if cfg.backend != "openai" else cfg.model,
        "adapter": adapter_hash(cfg.adapter) if cfg.adapter else None,
        "backend": cfg.backend,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_steps": cfg.max_steps,
        "max_new_tokens": cfg.max_new_tokens,
        "seed": cfg.seed,
        "self_consistency": cfg.self_consistency,
        "tools": list(cfg.tools),
        "corpus": cfg.corpus,
        "retriever_url": cfg.retriever_url,
        "system_prompt": _prompt_hash(cfg, prompt),
        "profile": prompt.profile or "smolagents",
        "grader": cfg.grader,
        "judge": cfg.judge_model,
    }
    digest = hashlib.blake2b(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS), digest_size=6).hexdigest()
    return f"eval-{digest}", identity


def _prompt_hash(cfg: EvalConfig, prompt: TrainedPrompt) -> str:
    text = (
        prompt.text
        if prompt.text is not None
        else (Path(cfg.system_prompt).read_text(encoding="utf-8") if cfg.system_prompt else "packaged")
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _grade(
    db: str | Path, bench: Benchmark, gen, generation_run: str, cfg: EvalConfig, judge: Backend | None
) -> BenchmarkResult:
    """Grade what the benchmark's grader has not graded yet; the per-question verdicts of the run."""
    from ..agent.questions import load_questions
    from ..grade import grade_answers, resolve_grader
    from ..grade.judge import judge_name
    from ..grade.store import record_grades

    questions = load_questions(bench.path, cfg.limit)
    grader = resolve_grader([q.gold for q in load_questions(bench.path)])
    if grader == "qa" and cfg.grader == "judge":
        grader = "judge"
    # without a judge, grade_answers below refuses the judge grader in one line
    name = judge_name(judge) if grader == "judge" and judge is not None else grader
    ids = [q.id for q in questions]
    with Store(db, read_only=True) as store:
        todo = queries.run(store.con, "eval/ungraded", run=generation_run, grader=name, questions=ids)
    if todo.height:
        grades = grade_answers(
            grader,
            todo["question"].to_list(),
            todo["gold_answer"].to_list(),
            todo["generated_answer"].to_list(),
            judge=judge,
        )
        with Store(db) as store, store.transaction() as con:
            record_grades(con, todo["trajectory_id"].to_list(), grades)
    with Store(db, read_only=True) as store:
        verdicts = queries.run(store.con, "eval/verdicts", run=generation_run, grader=name, questions=ids)
    if verdicts.height != len(ids):
        raise RuntimeError(
            f"{bench.name}: {verdicts.height} of {len(ids)} questions have a trajectory "
            f"in generation run {generation_run}"
        )
    predictions = [
        {
            "benchmark": bench.name,
            "question_id": row["question_id"],
            "final_answer": row["final_answer"],
            "correct": row["correct"],
            "steps": row["steps"],
            "trajectory_id": row["trajectory_id"],
            "grader": name,
        }
        for row in verdicts.iter_rows(named=True)
    ]
    return BenchmarkResult(
        bench.name, len(ids), sum(p["correct"] for p in predictions), name, generation_run, predictions
    )


def _record(
    db: str | Path,
    eval_run: str,
    bench: Benchmark,
    gen,
    result: BenchmarkResult,
    cfg: EvalConfig,
    identity: dict[str, Any],
    prompt: TrainedPrompt,
    started: datetime,
) -> None:
    from ..agent.generate import AGENT_CODE
    from ..versions import code_version

    protocol = {
        k: identity[k]
        for k in ("temperature", "top_p", "max_steps", "max_new_tokens", "seed", "self_consistency", "tools", "profile")
    }
    protocol["search"] = gen.retriever_url or gen.corpus
    with Store(db) as store, store.transaction() as con:
        con.execute(
            queries.sql_text("eval/record"),
            {
                "eval_run": eval_run,
                "benchmark": bench.name,
                "dataset": gen.dataset,
                "generation_run": result.generation_run,
                "name": cfg.name or _label(cfg),
                "model": identity["model"],
                "adapter": str(Path(cfg.adapter).resolve()) if cfg.adapter else None,
                "adapter_hash": identity["adapter"],
                "backend": cfg.backend,
                "protocol": orjson.dumps(protocol).decode(),
                "prompt_source": prompt.source,
                "prompt_hash": identity["system_prompt"],
                "grader": result.grader,
                "questions_file": str(bench.path),
                "questions": result.n,
                "correct": result.correct,
                "pass_at_1": result.pass_at_1,
                "code_version": code_version(*AGENT_CODE),
                "config": orjson.dumps(asdict(cfg)).decode(),
                "started": started,
                "finished": datetime.now(),
            },
        ).fetchall()
