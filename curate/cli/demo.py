"""`curate demo`: a real teacher generation, then the whole pipeline on a small bundled synthetic store."""

from __future__ import annotations

import argparse

from .bounds import COUNT
from .common import add_debug


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..demo import DemoConfig

    d = DemoConfig()
    parser = sub.add_parser(
        "demo",
        help="run generate -> synth -> ingest -> score -> select -> export -> report -> train -> eval end to end",
        description="Run the whole pipeline: a real teacher agent (SmolLM2-135M-Instruct, weak) on a few "
        "HotpotQA questions with tools, graded; then a small synthetic store (real benchmark questions, "
        "synthetic teacher runs) scored by a real student (SmolLM2-135M-Instruct by default), selected, "
        "exported and reported; that student trained with LoRA for a few steps on the export, then evaluated as "
        "an agent alone and with its adapter on a few questions (curate eval; a handful of questions says "
        "nothing about quality). Under 5 minutes on 2 CPU cores; --student tiny --teacher tiny: about a minute.",
    )
    parser.add_argument("--out", default=d.out, help=f"output folder (default: {d.out})")
    parser.add_argument(
        "--student",
        default=d.student,
        help=f"the student that scores the store, trains on the selection and is evaluated: a local "
        f"checkpoint folder or a built-in name (default: {d.student}; `tiny` for a quick run)",
    )
    parser.add_argument("--questions", type=COUNT, default=d.questions, help="questions per data set")
    parser.add_argument("--k", type=COUNT, default=d.k, help="teacher samples per question")
    parser.add_argument(
        "--teacher",
        default=d.teacher,
        help=f"teacher agent of the generation step: a local "
        f"checkpoint folder or a built-in name (default: {d.teacher})",
    )
    parser.add_argument(
        "--teacher-questions", type=COUNT, default=d.teacher_questions, help="HotpotQA questions the teacher runs on"
    )
    parser.add_argument("--teacher-k", type=COUNT, default=d.teacher_k, help="teacher runs per question")
    parser.add_argument(
        "--train-steps", type=COUNT, default=d.train_steps, help="LoRA optimiser steps, one trajectory each"
    )
    parser.add_argument(
        "--eval-questions",
        type=COUNT,
        default=d.eval_questions,
        help="questions of the bundled MATH sample the student is evaluated on",
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    add_debug(parser)
    parser.set_defaults(func=run, loads_model=True)


def run(args: argparse.Namespace) -> int:
    from ..demo import DemoConfig, run_demo
    from ..models import check_student

    for student in (args.student, args.teacher):
        check_student(student)  # before minutes of synthesis and scoring
    run_demo(
        DemoConfig(
            out=args.out,
            student=args.student,
            questions=args.questions,
            k=args.k,
            train_steps=args.train_steps,
            eval_questions=args.eval_questions,
            seed=args.seed,
            teacher=args.teacher,
            teacher_questions=args.teacher_questions,
            teacher_k=args.teacher_k,
        )
    )
    return 0
