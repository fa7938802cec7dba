"""`curate export`: write a selection as a Hugging Face dataset (folder, parquet file or Hub repo)."""

from __future__ import annotations

import argparse

from .common import add_db, add_debug
from .select import add_selection_args, open_store, selection_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="export a selection as a Hugging Face dataset (folder, parquet, or hub:ORG/NAME)",
        description="Select with --policy (stored like `curate select`) or take a stored --selection, and "
        "write the chosen trajectories as a datasets.Dataset with a `messages` column (TRL SFTTrainer "
        "conversational format) plus provenance columns, a dataset card (README.md) and the resolved "
        "config. Questions with no clean candidate are counted in the card, not exported.",
    )
    add_db(parser)
    parser.add_argument(
        "--to",
        required=True,
        metavar="DIR|FILE.parquet|hub:ORG/NAME",
        help="a folder (datasets.load_from_disk), a parquet file, or a Hub dataset repo",
    )
    parser.add_argument("--selection", help="export this stored selection instead of selecting with --policy")
    add_selection_args(parser, policy_required=False)
    parser.add_argument(
        "--tokenized",
        action="store_true",
        help="add input_ids, completion_mask (1 on the tokens the scorer scored) and segments "
        "(0 none, 1 reason, 2 action, 3 final), rendered by --student's tokenizer (default: the "
        "student of the selection's scoring run); with --selection, --student names only that",
    )
    parser.add_argument("--private", action="store_true", help="create the Hub repo private")
    parser.add_argument("--license", default="other", help="license id for the card's YAML header (default: other)")
    parser.add_argument(
        "--local", metavar="DIR", help="where a hub: export keeps its local copy (default: exports/ORG/NAME)"
    )
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import ExportConfig, export

    if (args.policy is None) == (args.selection is None):
        raise ValueError("give --policy NAME (select now) or --selection NAME (a stored selection), not both")
    # with --tokenized, --student also names the tokenizer, which a stored selection can take
    only_policy = ("run", "dataset", "k", "name") + (() if args.tokenized else ("student",))
    given = [f"--{o}" for o in only_policy if getattr(args, o) is not None]
    if args.selection and given:
        raise ValueError(
            f"--selection exports a stored selection as it was made; {', '.join(given)}: only with --policy"
        )
    config = ExportConfig(
        to=args.to,
        selection=args.selection,
        select=selection_config(args) if args.policy else None,
        private=args.private,
        license=args.license,
        local=args.local,
        tokenized=args.tokenized,
        tokenizer=args.student if args.tokenized else None,
    )
    with open_store(args.db, read_only=args.selection is not None) as store:
        done = export(store, config)
    print(
        f"selection {done.selection_id}: exported {done.rows} trajectories "
        f"({done.no_candidate} questions with no clean candidate left out)"
    )
    print(f"data: {done.path}\ncard: {done.card}")
    if done.repo_id:
        print(f"pushed to https://huggingface.co/datasets/{done.repo_id}")
    return 0
