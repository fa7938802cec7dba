"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse

from ..store import DEFAULT_DB
from .bounds import COUNT, POSITIVE


def add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=DEFAULT_DB, help=f"DuckDB store file (default: {DEFAULT_DB})")


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def add_unsafe_executor(parser: argparse.ArgumentParser) -> None:
    """--unsafe-local-executor: model code without the jail, for machines that cannot make one."""
    parser.add_argument(
        "--unsafe-local-executor",
        action="store_true",
        help="run model-written code WITHOUT the bubblewrap jail (only where none can be made: "
        "the code can then read your files and reach your network; its environment is still empty)",
    )


def add_run(parser: argparse.ArgumentParser) -> None:
    """--run ID or --student S (its latest finished scoring run); resolved by curate.runs.resolve_run."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--run", help="scoring run id (default: the store's only finished run)")
    which.add_argument("--student", help="student path or built-in name: its latest finished scoring run")


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """--ray ADDRESS and --workers N: the job's shards on a Ray cluster (docs/ray.md)."""
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run on a Ray cluster: local (start one on this machine), auto (RAY_ADDRESS or a running cluster), "
        "host:port, or ray://host:port; needs curate[ray]",
    )
    parser.add_argument(
        "--workers",
        type=COUNT,
        help="with --ray: workers, each loading the model once (default: one per GPU, else one per node)",
    )


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """The agent runtime's model backend and batching options (curate generate, curate eval)."""
    parser.add_argument("--backend", default="transformers", choices=["transformers", "vllm", "openai"])
    add_unsafe_executor(parser)
    add_ray_options(parser)
    parser.add_argument("--endpoint", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (openai)")
    parser.add_argument("--slots", type=COUNT, default=16, help="runs in flight: the batch of each generation call")
    parser.add_argument(
        "--write-every",
        type=COUNT,
        default=8,
        help="finished runs per store transaction (a killed job loses at most these; default: 8)",
    )
    parser.add_argument(
        "--request-timeout",
        type=POSITIVE,
        metavar="SECONDS",
        help="openai: seconds to wait for "
        "a request's answer before retrying it, 4 retries in all, each said on stderr (default: 600)",
    )
    parser.add_argument("--device", help="transformers/vllm: cpu or cuda (default: cuda when there is one)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"])
