"""`curate select`: run a selection policy over a scoring run and store its choice per question."""

from __future__ import annotations

import argparse

from .bounds import COUNT, NAME
from .common import add_db, add_debug, add_run

POLICY_HELP = "built-in policy (min_nll, median_nll, max_nll, random, first) or the path of a .sql policy file"


def add_selection_args(parser: argparse.ArgumentParser, policy_required: bool = True) -> None:
    """The options that say what to select (shared with `curate export`)."""
    parser.add_argument("--policy", required=policy_required, help=POLICY_HELP)
    add_run(parser)
    parser.add_argument("--dataset", type=NAME, help="only this data set (default: all)")
    parser.add_argument("--k", type=COUNT, help="only samples with sample_idx < K (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed for policies that draw (random); default 0")
    parser.add_argument(
        "--name",
        help="selection id (default: POLICY:RUN[:DATASET][:kK][:seedS]); an existing "
        "selection of that name is replaced",
    )


def selection_config(args: argparse.Namespace):
    """The SelectConfig the parsed options describe."""
    from ..select import SelectConfig

    return SelectConfig(
        policy=args.policy,
        run=args.run,
        student=args.student,
        dataset=args.dataset,
        k=args.k,
        seed=args.seed,
        name=args.name,
    )


def open_store(db: str, read_only: bool = False):
    """The store in `db`; selecting never creates one, so a mistyped path is an error, not a new file."""
    from ..store import Store

    return Store(db, read_only=read_only, create=False)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "select",
        help="choose one trajectory per question with a policy and store the selection",
        description="Run a selection policy (one .sql file) over the clean, scored trajectories of a "
        "scoring run and store one row per question: the chosen trajectory, or none with the reason. "
        "Re-selecting under the same name replaces the selection in one transaction.",
    )
    add_db(parser)
    add_selection_args(parser)
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..select import describe, select

    with open_store(args.db) as store:
        stored = select(store, selection_config(args))
        print("\n".join(describe(store.con, stored.selection_id)))
    action = "replaced the earlier selection of that name" if stored.replaced else "stored"
    print(f"{action} in {args.db}")
    return 0
