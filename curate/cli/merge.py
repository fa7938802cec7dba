"""`curate merge`: fold a LoRA adapter into its base model."""

from __future__ import annotations

import argparse

from .common import add_debug


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "merge",
        help="merge a trained LoRA adapter into its base model (loads with plain transformers)",
        description="Load the adapter's base model, merge the LoRA weights into it and save the "
        "result with its tokenizer to --out.",
    )
    parser.add_argument("--adapter", required=True, help="adapter folder written by curate train")
    parser.add_argument("--out", required=True, help="output folder for the merged model")
    parser.add_argument("--base", help="base model folder (default: the one recorded in the adapter)")
    add_debug(parser)
    parser.set_defaults(func=run, loads_model=True)


def run(args: argparse.Namespace) -> int:
    from curate.train.merge import MergeConfig, merge

    print(merge(MergeConfig(adapter=args.adapter, out=args.out, base=args.base)))
    return 0
