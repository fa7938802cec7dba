"""`curate analyze`: the NLL tertile tables of one scoring run, printed as Markdown."""

from __future__ import annotations

import argparse

from .bounds import NAME
from .common import add_db, add_debug, add_run

RULE_HELP = (
    "quantile: thresholds at the 1/3 and 2/3 NLL quantiles, ties to the lower bucket (default, the "
    "paper's); rank: equal-count split by NLL rank"
)


def add_rule(parser: argparse.ArgumentParser, text: str = RULE_HELP) -> None:
    """--rule quantile|rank (the names of curate.analysis.RULES, kept literal so --help imports nothing)."""
    parser.add_argument("--rule", choices=["quantile", "rank"], default="quantile", help=text)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "analyze",
        help="NLL tertile analyses: bucket statistics, HARD - EASY, within-question Spearman",
        description="Split every scored trajectory of each data set into NLL tertiles (global and "
        "per question) and print per-bucket statistics, HARD - EASY deltas and the within-question "
        "Spearman rho of NLL with correctness (SQL in sql/analysis/).",
    )
    add_db(parser)
    add_run(parser)
    parser.add_argument("--dataset", type=NAME, help="one data set (default: every data set, each on its own)")
    add_rule(parser)
    parser.add_argument(
        "--by",
        choices=["model"],
        help="model: bucket and correlate within each teacher model, and list every model's mean NLL and success rate",
    )
    add_debug(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis import AnalysisConfig, analyze, unbucketed
    from ..analysis.report import analysis_text
    from ..runs import resolve_run
    from ..store import Store

    with Store(args.db, create=False) as store:
        run_id = resolve_run(store.con, run_id=args.run, student=args.student)
        config = AnalysisConfig(run_id, args.dataset, args.rule, by_model=args.by == "model")
        result = analyze(store.con, config)
        left_out = unbucketed(store.con, config)
    print(f"# NLL tertiles of scoring run {run_id}\n")
    for row in left_out.iter_rows(named=True):
        print(
            f"{row['dataset']}: {row['unbucketed']} scored trajectories have no NLL and are in no bucket "
            f"({row['truncated']} truncated to no turn within the run's max_length, the rest have no "
            "assistant turn)\n"
        )
    print(analysis_text(result.stats, result.deltas, result.spearman, result.models, config.rule, config.by_model))
    return 0
