"""`curate eval`: pass@1 of a model (base, with a LoRA adapter, or merged) as a CodeAct agent on benchmarks."""

from __future__ import annotations

import argparse

from .bounds import COUNT, NON_NEGATIVE, TOP_P
from .common import add_db, add_debug, add_engine_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="pass@1 of a student as a CodeAct agent on the paper's benchmarks (Table 2)",
        description="Evaluate a model as a CodeAct agent (Python and web_search tools, at most --max-steps "
        "steps, temperature 0, one run per question) on benchmark questions, graded: math by math-verify, "
        "QA by normalised exact match or an LLM judge. Each question's run is a trajectory in the store "
        "(data set eval:<benchmark>) and each benchmark a row of eval_runs. With an adapter from curate "
        "train, the student sees the system prompt it was trained with (from its train_config.json). "
        "Writes results.json, predictions.jsonl and Table 2 (table.md, table.csv, table.tex) to --out; "
        "re-running the same command resumes. The last line is eval_run=ID.",
    )
    add_db(parser)
    parser.add_argument(
        "--model",
        required=True,
        help="local checkpoint folder or built-in name (transformers, "
        "vllm), or the served model's name (openai; for an adapter: the name it is served under)",
    )
    parser.add_argument(
        "--adapter",
        help="LoRA adapter folder from curate train, applied to --model (openai: read "
        "only for its system prompt and hash; the server applies it)",
    )
    parser.add_argument(
        "--benchmarks",
        required=True,
        help="comma-separated: HotpotQA, MuSiQue, Bamboogle, "
        "2WikiMultiHopQA, MATH-500, AIME, OlymMath, GSM-hard (../shared/data/questions), all, or "
        "question file paths. AMC23 and Gaokao (in the paper's Table 2) are not in the shared "
        "data: pass their files as paths",
    )
    parser.add_argument("--out", required=True, help="folder for results.json, predictions.jsonl, table.md/.csv/.tex")
    parser.add_argument("--name", help="the run's label in tables (default: model and adapter folder names)")
    parser.add_argument("--limit", type=COUNT, help="only the first N questions of each benchmark")
    parser.add_argument("--max-steps", type=COUNT, default=5, help="code actions per run (default: 5, the paper's)")
    parser.add_argument(
        "--temperature", type=NON_NEGATIVE, default=0.0, help="default: 0 (greedy, the paper's protocol)"
    )
    parser.add_argument("--top-p", type=TOP_P, default=1.0)
    parser.add_argument("--max-new-tokens", type=COUNT, default=1024, help="tokens per generation call")
    parser.add_argument("--seed", type=int, default=0, help="base seed (matters when sampling)")
    parser.add_argument(
        "--self-consistency",
        type=COUNT,
        default=1,
        metavar="N",
        help="self-consistent action "
        "generation: N candidate actions per step (temperature 0.4, top-p 0.8), each run in its "
        "own copy of the sandbox state, failing ones dropped, the most common outcome kept",
    )
    parser.add_argument("--tools", default="python,web_search", help="comma-separated: python, web_search")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--corpus",
        help="web_search over this JSONL corpus of {id, title, text} (default: the "
        "built-in wiki-summaries, ~10k Wikipedia summaries, not the paper's index)",
    )
    where.add_argument("--retriever-url", help="web_search through a retrieval server (the paper's e5 index)")
    parser.add_argument(
        "--grader",
        default="auto",
        choices=["auto", "qa", "judge"],
        help="QA benchmarks: qa "
        "(normalised exact match; auto) or judge (an LLM judge, as the paper); math: math-verify",
    )
    parser.add_argument("--judge-model", help="with --grader judge: model folder, built-in name or served name")
    parser.add_argument("--judge-backend", default="transformers", choices=["transformers", "vllm", "openai"])
    parser.add_argument("--judge-endpoint", help="OpenAI-compatible base URL (with --judge-backend openai)")
    parser.add_argument(
        "--system-prompt",
        help="a system prompt template file (default: the one the adapter was trained with, else the packaged prompt)",
    )
    add_engine_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_debug(parser)
    parser.set_defaults(func=run, loads_model=True)


def run(args: argparse.Namespace) -> int:
    from ..eval.evaluate import EvalConfig, evaluate
    from ..eval.outputs import check_out, write_outputs

    check_out(args.out)
    cfg = EvalConfig(
        model=args.model,
        benchmarks=args.benchmarks,
        adapter=args.adapter,
        limit=args.limit,
        max_steps=args.max_steps,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        backend=args.backend,
        endpoint=args.endpoint,
        self_consistency=args.self_consistency,
        tools=tuple(t.strip() for t in args.tools.split(",") if t.strip()),
        corpus=args.corpus,
        retriever_url=args.retriever_url,
        grader=args.grader,
        judge_model=args.judge_model,
        judge_backend=args.judge_backend,
        judge_endpoint=args.judge_endpoint,
        system_prompt=args.system_prompt,
        name=args.name,
        slots=args.slots,
        write_every=args.write_every,
        device=args.device,
        dtype=args.dtype,
        request_timeout=args.request_timeout,
        unsafe_local_executor=args.unsafe_local_executor,
        ray=args.ray,
        workers=args.workers,
    )
    result = evaluate(args.db, cfg, progress=not args.quiet)
    print(write_outputs(args.db, result, args.out), end="")
    print(f"system prompt: {result.prompt.source}")
    print(f"results: {args.out}/results.json, predictions.jsonl, table.md, table.csv, table.tex")
    print(f"eval_run={result.eval_run}")
    return 0
