"""`curate train`: LoRA-train a student on an exported subset with the segment-weighted loss."""

from __future__ import annotations

import argparse

from curate.train.config import TrainConfig, add_options, from_args

from .common import add_debug


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="LoRA-train a student on exported trajectories (smartad / uniform / sad / custom loss)",
        description="Train LoRA adapters on an exported data set with the segment-weighted loss "
        "(reason / action / final weights). Writes the peft adapter, train_config.json, "
        "train_log.jsonl and loss_curves.png to --out; re-running resumes from the last checkpoint. "
        "Under torchrun (WORLD_SIZE > 1) it trains with DDP.",
    )
    add_options(parser, TrainConfig)
    add_debug(parser)
    parser.set_defaults(func=run, loads_model=True)


def run(args: argparse.Namespace) -> int:
    from curate.train.recipe import train

    print(train(from_args(args, TrainConfig)).out)
    return 0
