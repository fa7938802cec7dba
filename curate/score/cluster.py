"""`curate score --ray`: the blocks of a scoring job on the workers of a Ray cluster.

The driver reads each block's chats from the store and sends them; a worker loads the student
once (checking that its weights are the driver's), scores the block exactly as `curate score`
does on one machine (the same blocks, so the same numbers) and sends the part's rows back; the
driver writes them as a part and, at the end, takes every part in as a single-process run does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from ..cluster.ray import ClusterRun, Shard, connect, default_workers, node_id, run_shards
from ..models import resolve_student
from ..render import render, render_last_turn, stored_chats
from .blocks import prefix_reuse, ranking, score_block, write_part
from .student import CHECK_TOKENS, PROBE, make_backend, weights_hash


class ScoreWorker:
    """A scoring worker: the student and its tokenizer, loaded once on the worker's node."""

    def __init__(self, config: Any, weights: str, max_length: int, single_pass: bool) -> None:
        from transformers import AutoTokenizer

        path = resolve_student(config.student)
        if (found := weights_hash(path)) != weights:
            raise ValueError(
                f"{config.student} on node {node_id()[:8]} has weights {found[:12]}, the driver's "
                f"{weights[:12]}: every node must hold the same student"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.backend = make_backend(config, path, max_length)
        self.max_length, self.single_pass = max_length, single_pass
        if hasattr(self.backend, "check"):
            probe = render(self.tokenizer, PROBE) if single_pass else render_last_turn(self.tokenizer, PROBE)
            self.backend.check(probe.input_ids[:CHECK_TOKENS])

    def score(self, payload: tuple[list[str], dict[str, list], bool]) -> tuple[pl.DataFrame, dict[str, int], str, str]:
        """The part rows of one block (with `alone` in the payload, IFD's alone pass), what scoring it
        counted, whether shared prefixes were reused and whether tokens were ranked."""
        ids, chats, alone = payload
        counts = {"rendered": 0, "forwarded": 0, "repeats": 0}

        def forwarded(tokens: int) -> None:
            counts["forwarded"] += tokens

        frame = score_block(
            self.backend, self.tokenizer, chats, ids, self.single_pass, self.max_length, forwarded, counts, alone
        )
        return frame, counts, prefix_reuse(self.backend), ranking(self.backend)


def score_on_ray(
    config: Any,
    ident: Any,
    single_pass: bool,
    todo: list[str],
    run_dir: Path,
    stats: dict,
    open_store: Callable[..., Any],
    progress: Callable[[int], object],
    alone: bool = False,
) -> ClusterRun:
    """Score `todo` block by block (with `alone`, IFD's alone pass) on the cluster's workers into
    parts under `run_dir`; `stats` adds up what the blocks counted, as the single-process path does."""
    ray = connect(config.ray)
    workers = config.workers or default_workers(ray)

    def blocks() -> Iterator[Shard]:
        for i in range(0, len(todo), config.part_size):
            block = todo[i : i + config.part_size]
            with open_store(config.db, read_only=True) as store:
                chats = stored_chats(store.con, block)
            yield Shard(f"{i // config.part_size}", len(block), (block, chats, alone))

    def taken(shard: Shard, value: tuple[pl.DataFrame, dict[str, int], str, str]) -> int:
        frame, counts, stats["prefix_reuse"], stats["ranks"] = value
        write_part(run_dir, "ray", frame, "alone" if alone else "part")
        for key, n in counts.items():
            stats[key] += n
        per_trajectory = frame.unique("trajectory_id")
        stats["fallback"] += per_trajectory.filter(pl.col("fallback").is_not_null()).height
        stats["truncated"] += per_trajectory.filter(pl.col("truncated")).height
        stats["empty"] += per_trajectory.filter(pl.col("truncated") & pl.col("turn").is_null()).height
        return counts["rendered"]

    init = (config, ident.weights_hash, ident.max_length, single_pass)
    return run_shards(ray, ScoreWorker, init, "score", blocks(), workers, taken, progress)
