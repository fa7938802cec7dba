"""`curate grade`: grade every stored trajectory's final answer against its question's gold answer."""

from __future__ import annotations

import argparse

from .bounds import COUNT, NAME, POSITIVE
from .common import add_db, add_debug


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "grade",
        help="grade every trajectory's final answer (math-verify, QA exact match / F1, or an LLM judge)",
        description="Grade each trajectory's final answer (trajectories.generated_answer) against "
        "questions.gold_answer. Grades go to the grades table (one row per trajectory and grader, with "
        "score and explanation); trajectories.correct and clean are set from this run's grader "
        "(graded_by names it). The verdict an ingested log came with is kept first as grader 'source'. "
        "Re-running grades only what this grader has not graded yet (resumes after a kill). Prints one "
        "line per data set.",
    )
    add_db(parser)
    parser.add_argument("--dataset", type=NAME, help="grade only this data set (default: every data set)")
    parser.add_argument(
        "--grader",
        default="auto",
        choices=["auto", "math", "qa", "judge"],
        help="auto: math when most gold answers of the data set are numbers or LaTeX, else qa",
    )
    parser.add_argument(
        "--judge-model",
        help="with --grader judge: model folder, built-in name, or the model name an OpenAI-compatible server serves",
    )
    parser.add_argument("--judge-backend", default="transformers", choices=["transformers", "vllm", "openai"])
    parser.add_argument("--judge-endpoint", help="OpenAI-compatible base URL (with --judge-backend openai)")
    parser.add_argument(
        "--request-timeout",
        type=POSITIVE,
        metavar="SECONDS",
        help="with --judge-backend openai: seconds to wait for a request's answer before retrying it (default: 600)",
    )
    parser.add_argument("--regrade", action="store_true", help="grade again what this grader graded before")
    parser.add_argument("--workers", type=COUNT, default=2, help="math-verify worker processes (default: 2)")
    parser.add_argument(
        "--timeout",
        type=POSITIVE,
        default=20.0,
        help="seconds one math answer may take before its worker is killed (default: 20)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_debug(parser)
    parser.set_defaults(func=run, loads_model=True)


def run(args: argparse.Namespace) -> int:
    from ..grade.store import grade_store
    from ..store import Store

    if args.judge_model and args.grader != "judge":
        raise ValueError("--judge-model is used only with --grader judge")
    judge = None
    if args.grader == "judge":
        if not args.judge_model:
            raise ValueError("--grader judge needs --judge-model")
        from ..agent.backends import endpoint_options, make_backend

        judge = make_backend(
            args.judge_backend,
            args.judge_model,
            **endpoint_options(args.judge_backend, args.judge_endpoint, args.request_timeout),
        )
    options = {"judge_backend": args.judge_backend if judge else None, "judge_endpoint": args.judge_endpoint}
    try:
        with Store(args.db) as store:
            summaries = grade_store(
                store,
                args.dataset,
                args.grader,
                judge=judge,
                regrade=args.regrade,
                workers=args.workers,
                timeout=args.timeout,
                options=options,
                progress=not args.no_progress,
            )
    finally:
        if judge is not None:
            judge.close()
    for summary in summaries:
        print(summary.line())
    return 0
