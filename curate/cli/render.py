"""`curate render`: the chat messages of stored trajectories exactly as the scorer and trainer
feed them to the chat template (the role mapping applied)."""

from __future__ import annotations

import argparse

from .bounds import NAME
from .common import add_db, add_debug


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "render",
        help="print trajectories as the chat messages the student sees (JSON lines)",
        description='Print one JSON line per trajectory, {"trajectory_id", "messages"}: the chat '
        "messages after the role mapping, exactly as scoring and training feed them to the chat "
        'template. With --student, also "text": the template\'s rendering.',
    )
    add_db(parser)
    parser.add_argument("--trajectory", nargs="+", metavar="ID", help="these trajectories (default: all)")
    parser.add_argument("--dataset", type=NAME, help="only this data set")
    parser.add_argument("--student", help="also render with this model's chat template")
    parser.add_argument("--format", default="jsonl", choices=["jsonl"])
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ..score import rendered_chats

    for row in rendered_chats(args.db, args.trajectory, args.dataset, args.student):
        print(json.dumps(row, ensure_ascii=False))
    return 0
