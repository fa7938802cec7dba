"""`curate synth --questions N --k K --out FILE.jsonl`: synthetic smolagents runs for real questions."""

from __future__ import annotations

import argparse

from .bounds import COUNT
from .common import add_debug


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "synth",
        help="write synthetic teacher runs (smolagents format, labelled synthetic) for real questions",
        description="Write K synthetic smolagents-format runs for each of N real train questions "
        "(cycled when N exceeds the set), deterministic by seed. Questions come from the shared data "
        "folder when present, else from the 64-question sample bundled with curate. "
        "A .gz or .zst suffix compresses the output; FILE.synth.json records the settings.",
    )
    parser.add_argument("--questions", type=COUNT, required=True, help="number of questions N")
    parser.add_argument("--k", type=COUNT, required=True, help="runs per question K")
    parser.add_argument("--out", required=True, help="output JSONL (.jsonl, .jsonl.gz, .jsonl.zst)")
    parser.add_argument(
        "--source",
        default="hotpotqa",
        choices=["hotpotqa", "math", "math_medium"],
        help="question set: HotPotQA (retrieval runs) or MATH (code runs)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--log-data-string", action="store_true", help="store log_data as a JSON string, as the Hub's dumps do"
    )
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..ingest.synth import SynthConfig, write

    cfg = SynthConfig(
        questions=args.questions, k=args.k, source=args.source, seed=args.seed, log_data_as_string=args.log_data_string
    )
    resolved = write(cfg, args.out)
    print(
        f"{args.out}: {resolved['records']} synthetic runs ({args.questions} questions x {args.k}) "
        f"from {resolved['questions_from']}"
    )
    return 0
