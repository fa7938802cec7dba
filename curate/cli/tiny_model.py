"""`curate tiny-model DIR`: write a tiny offline Qwen2 model + ChatML tokenizer."""

from __future__ import annotations

import argparse

from ..models.tiny import TOKENIZERS
from .common import add_debug


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "tiny-model",
        help="write a tiny Qwen2 model and BPE tokenizer (tests, demo; no network)",
        description="Write a tiny randomly initialised Qwen2 causal LM with a small byte-level BPE "
        "tokenizer and a ChatML chat template, loadable with from_pretrained(DIR).",
    )
    parser.add_argument("dir", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    parser.add_argument(
        "--tokenizer",
        choices=TOKENIZERS,
        default="small",
        help="small: a 1,024-token BPE (default); qwen2.5: the real Qwen2.5 tokenizer, vocabulary 151,936",
    )
    add_debug(parser)
    parser.set_defaults(func=run, loads_model=True)


def run(args: argparse.Namespace) -> int:
    from ..models.tiny import write_tiny_model

    print(write_tiny_model(args.dir, seed=args.seed, tokenizer=args.tokenizer))
    return 0
