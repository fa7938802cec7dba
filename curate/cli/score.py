"""`curate score`: per-assistant-turn NLL of every stored trajectory under a student model."""

from __future__ import annotations

import argparse

from .bounds import NAME
from .common import add_db, add_debug, add_ray_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "score",
        help="score every trajectory's assistant turns (NLL) under a student model",
        description="Score every stored trajectory (correct and incorrect) under a student: per "
        "assistant turn, the mean token NLL, from one forward pass per trajectory (shared prefixes such as "
        "the system prompt computed once). Results go to "
        "turn_scores / trajectory_scores (view trajectory_nll) under a scoring run whose id is "
        "printed last as run_id=ID. Each turn also gets the sum of its tokens' clipped ranks (view "
        "trajectory_rsr); --ifd adds IFD's alone pass (view trajectory_ifd). Re-running the same "
        "command resumes the run; --shard I/N splits the work for N workers.",
    )
    add_db(parser)
    parser.add_argument("--student", required=True, help="model folder (any local checkpoint) or built-in name")
    parser.add_argument("--dataset", type=NAME, help="score only this data set")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument(
        "--max-length",
        type=int,
        help="tokens per trajectory; longer ones are scored over "
        "what fits and flagged truncated (default: the model's context length)",
    )
    parser.add_argument(
        "--batch-tokens",
        type=int,
        help="tokens per forward pass, padding included (default: "
        "2048 on CPU, 16384 on GPU; activation memory grows with it)",
    )
    parser.add_argument("--shard", default="0/1", help="I/N: score only shard I of N (0-based)")
    parser.add_argument("--backend", default="transformers", choices=["transformers", "vllm"])
    parser.add_argument(
        "--pack",
        action="store_true",
        help="on a GPU, pack sequences into one row with "
        "position ids restarting per sequence (padding-free; pays off with varlen flash attention; "
        "on a CPU every batch is packed already)",
    )
    parser.add_argument(
        "--no-prefix-reuse",
        action="store_true",
        help="re-encode shared prefixes (system "
        "prompt, task) for every trajectory instead of scoring against their cached keys/values",
    )
    parser.add_argument(
        "--ifd",
        action="store_true",
        help="then score every assistant turn alone (as the only message of a chat, after the "
        "template's default system prompt), for IFD (view trajectory_ifd): a second, shorter pass "
        "over the run's trajectories that lack it",
    )
    parser.add_argument("--part-size", type=int, default=256, help="trajectories per parquet part")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_ray_options(parser)
    add_debug(parser)
    parser.set_defaults(func=run, loads_model=True)


def run(args: argparse.Namespace) -> int:
    from ..score import ScoreConfig, parse_shard, score

    result = score(
        ScoreConfig(
            db=args.db,
            student=args.student,
            dataset=args.dataset,
            device=args.device,
            dtype=args.dtype,
            max_length=args.max_length,
            batch_tokens=args.batch_tokens,
            shard=parse_shard(args.shard),
            backend=args.backend,
            pack=args.pack,
            part_size=args.part_size,
            prefix_reuse=not args.no_prefix_reuse,
            progress=not args.no_progress,
            ifd=args.ifd,
            ray=args.ray,
            workers=args.workers,
        )
    )
    for line in result.lines():
        print(line)
    return 0
