"""`curate report`: a static HTML page (index.html plus assets) about a store and one scoring run."""

from __future__ import annotations

import argparse

from .analyze import add_rule
from .bounds import at_least
from .common import add_db, add_debug, add_run


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..report.config import ReportConfig

    d = ReportConfig(db="", out="")
    parser = sub.add_parser(
        "report",
        help="write a static HTML report: store, tertile tables and figures, selections, trajectory viewer",
        description="Write OUT/index.html (open it from disk, no server): per data set counts and rejects, "
        "the tertile tables and figures of `curate figures`, the per-model plot, the run's selections side "
        "by side, and a trajectory viewer with each supervised token shaded by its NLL under the student "
        "(recomputed for the questions the viewer carries only).",
    )
    add_db(parser)
    add_run(parser)
    parser.add_argument("--out", required=True, help="output folder: new, empty, or an earlier report (replaced)")
    parser.add_argument(
        "--selection",
        action="append",
        default=[],
        metavar="NAME",
        help="a stored selection to show (repeatable; default: every selection of the run)",
    )
    parser.add_argument(
        "--questions",
        type=at_least(0),
        default=d.questions,
        metavar="N",
        help=f"viewer: questions per data set, drawn by a seeded hash (default: {d.questions})",
    )
    parser.add_argument(
        "--samples",
        type=at_least(0),
        default=d.samples,
        metavar="M",
        help=f"viewer: samples per question with token NLLs (default: {d.samples})",
    )
    parser.add_argument(
        "--seed", type=int, default=d.seed, help=f"viewer: which questions are drawn (default: {d.seed})"
    )
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="viewer: model folder for token NLLs when the run's student is not "
        "available here (default: the run's student)",
    )
    parser.add_argument("--device", default=d.device, help=f"viewer: device for token NLLs (default: {d.device})")
    add_rule(parser, "bucketing rule of the tables and Fig 4 (default: quantile)")
    add_debug(parser)
    parser.set_defaults(func=run, loads_model=True)


def run(args: argparse.Namespace) -> int:
    from ..report.report import ReportConfig, write_report

    result = write_report(
        ReportConfig(
            db=args.db,
            out=args.out,
            run=args.run,
            student=args.student,
            selections=tuple(args.selection),
            questions=args.questions,
            samples=args.samples,
            seed=args.seed,
            model=args.model,
            device=args.device,
            rule=args.rule,
        )
    )
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    shaded = "" if result.shaded else "; token NLLs not shown"
    print(f"report: {result.questions} questions, {result.detailed} trajectories to open{shaded} ({parts})")
    if result.note:
        print(f"note: {result.note}")
    for note in result.figure_notes:
        print(f"note: {note}")
    print(result.index)
    return 0
