"""`curate replay`: re-execute stored code actions in the sandbox and compare the observations."""

from __future__ import annotations

import argparse

from .bounds import COUNT, NAME, POSITIVE
from .common import add_db, add_debug, add_unsafe_executor


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "replay",
        help="re-run stored code actions in the sandbox; count steps whose observation matches",
        description="Re-execute the code actions of stored trajectories in the python sandbox, step by "
        "step with state carried over, compare each new observation with the stored one "
        "(whitespace normalised; MINT runs as IPython showed them) and write the table "
        "replays(trajectory_id, steps, reproduced, first_mismatch, reason).",
    )
    add_db(parser)
    parser.add_argument("--dataset", type=NAME, help="only this data set (default: all)")
    parser.add_argument("--trajectory", nargs="+", metavar="ID", help="only these trajectories")
    parser.add_argument("--seconds", type=POSITIVE, default=10.0, help="time limit of one step (default: 10)")
    parser.add_argument("--memory-mb", type=COUNT, default=1024, help="memory of one run (default: 1024)")
    parser.add_argument(
        "--imports",
        default=None,
        help="comma-separated extra authorized imports, smolagents syntax (default: "
        "numpy.*,sympy.* as the teacher ran; the safe standard modules always)",
    )
    parser.add_argument(
        "--again",
        action="store_true",
        help="replay also the trajectories already replayed under "
        "these settings (default: skip them, so an interrupted replay resumes)",
    )
    parser.add_argument("--workers", type=COUNT, default=None, help="steps run at once (default: CPU count)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--corpus", help="web_search over this JSONL corpus or built-in (wiki-summaries)")
    source.add_argument("--retriever-url", help="web_search through this retrieval server (POST /retrieve)")
    add_unsafe_executor(parser)
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..agent.replay import replay_store
    from ..agent.sandbox import DEFAULT_IMPORTS, Limits, PythonSandbox
    from ..store import Store

    tools = {}
    if args.corpus or args.retriever_url:
        from ..agent.corpora import make_retriever
        from ..agent.search import WebSearch

        tools["web_search"] = WebSearch(make_retriever(args.corpus, args.retriever_url))
    imports = tuple(args.imports.split(",")) if args.imports else DEFAULT_IMPORTS
    limits = Limits(seconds=args.seconds, memory_mb=args.memory_mb)
    with (
        Store(args.db) as store,
        PythonSandbox(limits, imports, tools, args.workers, args.unsafe_local_executor) as sandbox,
    ):
        summary, skipped = replay_store(store, sandbox, args.dataset, args.trajectory, progress=True, again=args.again)
        print(f"{sandbox.describe()}; {sandbox.redacted} secret values redacted from observations")
    if skipped:
        print(f"skipped {skipped} trajectories already replayed under these settings (--again replays them)")
    for row in summary.iter_rows(named=True):
        share = "n/a" if row["share"] is None else f"{100 * row['share']:.1f}%"
        print(
            f"{row['dataset']}: {row['trajectories']} trajectories, {row['steps']} code steps, "
            f"{row['reproduced']} reproduced ({share}); {row['complete']} trajectories reproduced in full, "
            f"{row['no_steps']} without a code step"
        )
    return 0
