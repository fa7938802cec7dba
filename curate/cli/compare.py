"""`curate compare`: selections, stored or run on the spot, side by side on one store."""

from __future__ import annotations

import argparse

from .bounds import COUNT, NAME
from .common import add_db, add_debug, add_run
from .selections import add_format


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "compare",
        help="compare selections and policies side by side",
        description="Stored selections, and policies run on a scoring run without storing them, side by "
        "side: questions and choices, the share of choices that are correct and in each NLL tertile, "
        "their mean NLL, RSR and IFD, length, tool calls and turns, and per pair the questions on which "
        "both chose the same trajectory.",
    )
    parser.add_argument("selections", metavar="SELECTION", nargs="*", help="stored selection ids")
    parser.add_argument(
        "--policy",
        action="append",
        default=[],
        help="a built-in policy or the path of a .sql policy file, run on --run / --student without "
        "storing it (repeat for several)",
    )
    add_run(parser)
    parser.add_argument("--dataset", type=NAME, help="with --policy: only this data set (default: all)")
    parser.add_argument("--k", type=COUNT, help="with --policy: only samples with sample_idx < K (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="with --policy: seed for policies that draw; default 0")
    parser.add_argument(
        "--pool",
        default="clean",
        choices=["clean", "all"],
        help="with --policy: choose among clean trajectories as curate select does (default), or among "
        "every scored one, correct or not (what each score picks before grading)",
    )
    parser.add_argument(
        "--tertiles",
        default="per_question",
        choices=["per_question", "global"],
        help="NLL tertiles of a choice among its question's scored trajectories (default) or its data set's",
    )
    parser.add_argument(
        "--rule", default="quantile", choices=["quantile", "rank"], help="tertile rule (default: quantile)"
    )
    add_db(parser)
    add_format(parser)
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..compare import CompareConfig, compare
    from ..output import write_frame
    from ..store import Store

    config = CompareConfig(
        selections=tuple(args.selections),
        policies=tuple(args.policy),
        run=args.run,
        student=args.student,
        dataset=args.dataset,
        k=args.k,
        seed=args.seed,
        pool=args.pool,
        scope=args.tertiles,
        rule=args.rule,
    )
    with Store(args.db, read_only=True) as store:
        write_frame(compare(store.con, config), args.format, args.out)
    return 0
