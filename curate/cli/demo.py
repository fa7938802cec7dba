"""`curate demo`: run the whole pipeline on a small bundled synthetic store."""

from __future__ import annotations

import argparse

from .common import add_debug


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..demo import DemoConfig

    d = DemoConfig()
    parser = sub.add_parser(
        "demo",
        help="run synth -> ingest -> score -> select -> export -> figures -> train end to end",
        description="Run the whole pipeline on a small synthetic store (real benchmark questions, "
        "synthetic teacher runs) with a real student (SmolLM2-135M-Instruct by default).",
    )
    parser.add_argument("--out", default=d.out, help=f"output folder (default: {d.out})")
    parser.add_argument("--student", default=d.student,
                        help=f"student: a local checkpoint folder or a built-in name (default: {d.student}; "
                        "`tiny` for a seconds-long run)")
    parser.add_argument("--questions", type=int, default=d.questions, help="questions per data set")
    parser.add_argument("--k", type=int, default=d.k, help="teacher samples per question")
    parser.add_argument("--train-student", default=d.train_student,
                        help=f"student the LoRA steps train (default: {d.train_student}; the scoring student "
                        "works too, at minutes per step on a CPU)")
    parser.add_argument("--train-steps", type=int, default=d.train_steps, help="LoRA optimiser steps")
    parser.add_argument("--seed", type=int, default=d.seed)
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import DemoConfig, run_demo
    from ..models import check_student

    for student in (args.student, args.train_student):
        check_student(student)  # before minutes of synthesis and scoring
    run_demo(DemoConfig(args.out, args.student, args.questions, args.k, args.train_student, args.train_steps,
                        args.seed))
    return 0
