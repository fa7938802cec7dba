"""`curate generate`: run a teacher agent K times per question and write every run into the store."""

from __future__ import annotations

import argparse

from .bounds import COUNT, NAME, NON_NEGATIVE, TOP_P
from .common import add_db, add_debug, add_engine_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "generate",
        help="sample K graded agent runs per question from a teacher model into the store",
        description="Run a CodeAct agent (Thought, Code:/```py/<end_code>, Observation; final_answer ends a "
        "run) K times per question with its own seed per sample, every in-flight run advancing in one "
        "batched generation call per step and its code executing in sandbox workers. Runs are graded "
        "(auto grader) and written to questions / trajectories / messages as ingest would write their logs. "
        "Re-running the same command resumes; the last line is generation_run=ID.",
    )
    add_db(parser)
    parser.add_argument(
        "--questions", required=True, help='question file: {"examples": [...]} JSON or JSONL with id, question, answer'
    )
    parser.add_argument("--dataset", type=NAME, required=True, help="data set the runs go into")
    parser.add_argument(
        "--model",
        required=True,
        help="local checkpoint folder or built-in name (transformers, vllm), or the served model's name (openai)",
    )
    parser.add_argument("--k", type=COUNT, required=True, help="samples per question")
    parser.add_argument("--temperature", type=NON_NEGATIVE, default=1.0)
    parser.add_argument("--top-p", type=TOP_P, default=1.0)
    parser.add_argument("--max-steps", type=COUNT, default=5, help="code actions per run (default: 5)")
    parser.add_argument("--max-new-tokens", type=COUNT, default=1024, help="tokens per generation call")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="base seed; each sample's seed derives from it, the question id and the sample index",
    )
    parser.add_argument("--limit", type=COUNT, help="only the first N questions of the file")
    parser.add_argument("--tools", default="python,web_search", help="comma-separated: python, web_search")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--corpus", help="web_search over this JSONL corpus of {id, title, text} (bm25s)")
    where.add_argument("--retriever-url", help="web_search through a retrieval server (POST /retrieve)")
    parser.add_argument(
        "--first-thought-prefix",
        action="store_true",
        help="start each first Thought with the "
        "first paragraph of a tool-free answer to the question (agent-distillation)",
    )
    parser.add_argument("--log-out", help="also write the runs as agent-distillation JSONL logs")
    parser.add_argument(
        "--system-prompt",
        help="a system prompt template file of yours (Jinja2; default: the "
        "packaged curate/agent/prompts/codeact_system.txt)",
    )
    add_engine_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_debug(parser)
    parser.set_defaults(func=run, loads_model=True)


def run(args: argparse.Namespace) -> int:
    from ..agent.generate import GenerateConfig, generate

    cfg = GenerateConfig(
        questions=args.questions,
        dataset=args.dataset,
        model=args.model,
        k=args.k,
        backend=args.backend,
        endpoint=args.endpoint,
        temperature=args.temperature,
        top_p=args.top_p,
        max_steps=args.max_steps,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        limit=args.limit,
        tools=tuple(t.strip() for t in args.tools.split(",") if t.strip()),
        corpus=args.corpus,
        retriever_url=args.retriever_url,
        first_thought_prefix=args.first_thought_prefix,
        system_prompt=args.system_prompt,
        slots=args.slots,
        write_every=args.write_every,
        device=args.device,
        dtype=args.dtype,
        request_timeout=args.request_timeout,
        log_out=args.log_out,
        unsafe_local_executor=args.unsafe_local_executor,
        ray=args.ray,
        workers=args.workers,
    )
    summary = generate(args.db, cfg, progress=not args.quiet)
    print(summary.line())
    if summary.sandbox:
        print(f"{summary.sandbox}; {summary.redacted} secret values redacted from observations")
    for line in summary.workers:
        print(line)
    if args.log_out:
        print(f"logs: {args.log_out}")
    print(f"generation_run={summary.generation_run}")
    return 0
