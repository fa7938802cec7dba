"""Blocks of trajectories rendered and scored into parquet parts: the unit of `curate score`'s work.

A chat is scored in one pass over its whole rendering when the template has the prefix property
and no token straddles the end of a turn; otherwise one pass per assistant turn over the history
up to it. IFD's "alone" pass (`alone=True`) scores each assistant turn as the only message of a
chat instead (`render_alone`). Each distinct token sequence is scored once (identical samples tie
exactly). A block's rows are written as one part, under a temp name then renamed, so a reader never
sees half a part.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from ..models import resolve_student
from ..render import Rendering, TemplateError, render, render_alone, render_last_turn, stored_chats
from ..store import Store
from .nll import turn_rank_sums, turn_totals


def _crossed_end(r: Rendering) -> int | None:
    """The first turn whose supervised span ends inside a token, or None. The per-turn rendering
    of that turn ends there, so it tokenizes differently from the whole; a token crossing a
    span's start is cut the same way in both (the turn's text follows it in either)."""
    starts = [start for start, _ in r.offsets]
    for m, (_, end) in enumerate(r.turn_spans):
        k = bisect.bisect_right(starts, end) - 1
        if k >= 0 and starts[k] < end < r.offsets[k][1]:
            return m
    return None


def renderings(
    tokenizer: Any, chat: Sequence[dict[str, str]], single_pass: bool
) -> tuple[list[tuple[int, Rendering]], str | None]:
    """The sequences that score a chat, each with the turn index of its turn 0, and why it is
    scored turn by turn (None: one whole rendering). A chat with no assistant turn (a run that
    only holds its task) has nothing to score."""
    if not any(m["role"] == "assistant" for m in chat):
        return [], None
    reason = "template fails the prefix check"
    if single_pass:
        try:
            whole = render(tokenizer, chat)
        except TemplateError:
            reason = "template rewrites earlier turns"
        else:
            crossed = _crossed_end(whole)
            if crossed is None:
                return [(0, whole)], None
            reason = f"a token crosses the end of turn {crossed}"
    ends = [i for i, m in enumerate(chat) if m["role"] == "assistant"]
    return [(m, render_last_turn(tokenizer, chat[: i + 1])) for m, i in enumerate(ends)], reason


def alone_renderings(tokenizer: Any, chat: Sequence[dict[str, str]]) -> list[tuple[int, Rendering]]:
    """IFD's "alone" pass: each assistant turn m of a chat as the only message of one (after the
    template's own default system prompt, where it has one), with m."""
    turns = [m["content"] for m in chat if m["role"] == "assistant"]
    return [(m, render_alone(tokenizer, content)) for m, content in enumerate(turns)]


def _digest(ids: Sequence[int], turn: Sequence[int]) -> bytes:
    import numpy as np

    h = hashlib.blake2b(np.asarray(ids, dtype=np.int64).tobytes(), digest_size=16)
    h.update(np.asarray(turn, dtype=np.int64).tobytes())
    return h.digest()


def score_block(
    backend: Any,
    tokenizer: Any,
    chats: dict[str, list],
    ids: Sequence[str],
    single_pass: bool,
    max_length: int,
    on_batch: Any = None,
    counts: dict | None = None,
    alone: bool = False,
) -> pl.DataFrame:
    """Score trajectories and return part rows: one per scored turn (turn null for none), with
    its NLL and, where the backend ranks tokens, the sum of its clipped ranks. With `alone`, the
    turns are scored as IFD's "alone" pass renders them.

    Each distinct token sequence is scored once and every trajectory holding it gets those very
    numbers, so identical samples tie exactly; `sequence_hash` lets the store keep that true
    across parts and workers. `counts` (if given) adds up the tokens rendered and the sequences
    that repeat an earlier one.
    """
    index: dict[bytes, int] = {}  # sequence digest -> position in seqs
    seqs: list[tuple[list[int], list[int]]] = []
    plans = {}
    for tid in ids:
        try:
            if alone:
                items, fallback = alone_renderings(tokenizer, chats.get(tid, [])), None
            else:
                items, fallback = renderings(tokenizer, chats.get(tid, []), single_pass)
        except TemplateError as error:
            raise TemplateError(f"trajectory {tid}: {error}") from None
        uses, whole = [], hashlib.blake2b(digest_size=16)
        for offset, r in items:
            seq = (r.input_ids[:max_length], r.turn[:max_length])
            digest = _digest(*seq)
            if counts is not None:
                counts["rendered"] += len(seq[0])
                counts["repeats"] += digest in index
            if digest not in index:
                index[digest] = len(seqs)
                seqs.append(seq)
            uses.append((offset, index[digest]))
            whole.update(offset.to_bytes(4, "big") + digest)
        truncated = any(len(r.input_ids) > max_length for _, r in items)
        plans[tid] = (uses, truncated, fallback, whole.hexdigest())
    clip = getattr(backend, "rank_clip", None)
    totals = []
    for (_, turn), got in zip(seqs, backend.scores(seqs, on_batch)):
        ranks = turn_rank_sums(got.rank, turn) if got.rank is not None else {}
        totals.append({m: (n, s, ranks.get(m)) for m, (n, s) in turn_totals(got.nll, turn).items()})
    rows = []
    for tid in ids:
        uses, truncated, fallback, sequence_hash = plans[tid]
        scored = sorted((offset + m, total) for offset, k in uses for m, total in totals[k].items())
        base = {
            "trajectory_id": tid,
            "traj_tokens": sum(n for _, (n, _, _) in scored),
            "truncated": truncated,
            "fallback": fallback,
            "sequence_hash": sequence_hash,
        }
        rows += [
            {
                **base,
                "turn": m,
                "tokens": n,
                "nll_sum": s,
                "nll_mean": s / n,
                "rank_sum": r,
                "rank_clip": None if r is None else clip,
            }
            for m, (n, s, r) in scored
        ]
        if not scored:
            rows.append({**base, "turn": None, "tokens": None, "nll_sum": None, "nll_mean": None})
    return pl.DataFrame(rows, schema=PART_SCHEMA)


PART_SCHEMA = {
    "trajectory_id": pl.Utf8,
    "turn": pl.Int32,
    "tokens": pl.Int32,
    "nll_sum": pl.Float64,
    "nll_mean": pl.Float64,
    "rank_sum": pl.Int64,  # the sum of the turn's clipped token ranks (null: the backend gave none)
    "rank_clip": pl.Int32,  # the clip of those ranks
    "traj_tokens": pl.Int32,
    "truncated": pl.Boolean,
    "fallback": pl.Utf8,
    "sequence_hash": pl.Utf8,
}


def prefix_reuse(backend: Any) -> str:
    """Whether a backend reuses shared prefixes: on, off, or why not."""
    return "on" if getattr(backend, "prefix_reuse", False) else getattr(backend, "no_prefix_reason", None) or "off"


def ranking(backend: Any) -> str:
    """Whether a backend ranks tokens (for RSR): the clip, or why not."""
    clip = getattr(backend, "rank_clip", None)
    return f"clipped at {clip}" if clip is not None else getattr(backend, "no_rank_reason", None) or "off"


def write_part(run_dir: Path, label: str, frame: pl.DataFrame, kind: str = "part") -> Path:
    """Write a part (`kind`: part, or alone for IFD's alone pass) under a temp name and rename it:
    a reader never sees half a part."""
    taken = [int(p.stem.rsplit("-", 1)[1]) for p in run_dir.glob(f"{kind}-{label}-*.parquet")]
    final = run_dir / f"{kind}-{label}-{max(taken, default=-1) + 1:06d}.parquet"
    tmp = run_dir / f".{final.name}.{os.getpid()}.tmp"
    frame.write_parquet(tmp)
    os.replace(tmp, final)
    return final


def part_ids(run_dir: Path, kind: str = "part") -> set[str]:
    """The trajectories that the complete parts of one kind (part, alone) hold."""
    done: set[str] = set()
    for part in sorted(run_dir.glob(f"{kind}-*.parquet")):
        try:
            done.update(pl.read_parquet(part, columns=["trajectory_id"])["trajectory_id"])
        except FileNotFoundError:  # taken in and removed by another worker meanwhile
            continue
    return done


def rendered_chats(
    db: str | Path, ids: Sequence[str] | None = None, dataset: str | None = None, student: str | None = None
) -> Iterator[dict]:
    """`{"trajectory_id", "messages"}` per stored trajectory (plus `"text"`, the student's chat
    template rendering, when a student is given), by data set, question and sample."""
    tokenizer = None
    if student:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(resolve_student(student))
    with Store(db, read_only=True) as store:
        found = store.run("score/trajectory_ids", dataset=dataset, ids=list(ids) if ids else None, unscored_in=None)[
            "trajectory_id"
        ].to_list()
        missing = sorted(set(ids or ()) - set(found))
        if missing:
            raise ValueError(
                f"{db}: no trajectory {', '.join(map(repr, missing))}"
                + (f" in data set {dataset!r}" if dataset else "")
            )
        for i in range(0, len(found), 256):
            block = found[i : i + 256]
            chats = stored_chats(store.con, block)
            for tid in block:
                row = {"trajectory_id": tid, "messages": chats.get(tid, [])}
                if tokenizer is not None:
                    row["text"] = tokenizer.apply_chat_template(row["messages"], tokenize=False)
                yield row
