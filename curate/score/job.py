"""`curate score`: per-assistant-turn NLL of every stored trajectory under a student model.

The job: identify the run (a hash of student, weights, tokenizer + template, dtype, max length,
backend, so the same command resumes the same run), read pending work from the store opened
read-only, close it, render and score blocks of trajectories, write each block as a parquet part
(`<db>.parts/<run_id>/part-<I>of<N>-<n>.parquet`, temp name then rename), and finally open the
store for writing only to take the parts in. Re-running skips what parts or the store hold;
`--shard I/N` splits the trajectory ids disjointly by a stable hash, so N workers can run at once.

Context: one forward pass per trajectory when the template has the prefix property (checked per
tokenizer on a probe chat); otherwise, and for a trajectory whose tokens straddle a turn boundary,
one pass per assistant turn over the history up to that turn. A trajectory longer than
`max_length` is scored over its first `max_length` tokens and flagged truncated: a turn cut by the
limit is scored over its tokens that fit, a turn wholly past it gets no row.

Each turn row also holds the sum of its tokens' ranks (clipped; RSR), from the same logits. With
`ifd`, a second pass ("alone", for IFD) then scores every assistant turn of the run's trajectories
as the only message of a chat: once per distinct token sequence, written as `alone-*` parts and
taken into turn_alone_scores.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from .. import queries
from ..models import resolve_student, student_key
from ..render import (
    prefix_consistent,
    render,
    render_last_turn,
    stored_chats,
)
from ..store import Store
from ..versions import code_version
from .blocks import part_ids, prefix_reuse, ranking, score_block, write_part
from .config import BACKENDS, ScoreConfig
from .student import CHECK_TOKENS, PROBE, make_backend, sha256_hex, tokenizer_hash, weights_hash, write_atomically

LOCK_WAIT_S = 600.0


@dataclass(frozen=True)
class RunIdentity:
    """What fixes a run's numbers; its hash is the run id."""

    student: str
    weights_hash: str
    tokenizer_hash: str
    dtype: str
    max_length: int
    backend: str
    code_version: str
    run_id: str = field(init=False)

    def __post_init__(self) -> None:
        key = [
            self.student,
            self.weights_hash,
            self.tokenizer_hash,
            self.dtype,
            self.max_length,
            self.backend,
            self.code_version,
        ]
        object.__setattr__(self, "run_id", sha256_hex(json.dumps(key).encode())[:16])


def shard_of(dataset: str, question_id: str, count: int) -> int:
    """A stable shard for a question (the same on every machine and Python version): the samples
    of a question stay together, so one worker shares their prefix and scores a repeat once."""
    digest = hashlib.blake2b(f"{dataset}\0{question_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def parts_dir(db: str | Path, run_id: str) -> Path:
    """Where the workers of one run put their parquet parts."""
    return Path(f"{db}.parts") / run_id


def open_store(db: str | Path, read_only: bool) -> Store:
    """Open the store, waiting up to LOCK_WAIT_S while another process holds it (DuckDB's file lock)."""
    return Store(db, read_only=read_only, wait=LOCK_WAIT_S)


def identify(config: ScoreConfig, path: Path, tokenizer: Any) -> RunIdentity:
    """The run identity of a config: hashes of what the student is, settings that change numbers."""
    max_length = config.max_length
    if max_length is None:
        from transformers import AutoConfig

        max_length = getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", None)
        if max_length is None:
            raise ValueError(f"{path}: the config has no max_position_embeddings; pass --max-length")
    return RunIdentity(
        student_key(config.student),
        weights_hash(path),
        tokenizer_hash(tokenizer),
        config.dtype,
        max_length,
        config.backend,
        code_version("score", "render", "engine"),
    )


def _manifest(run_dir: Path, ident: RunIdentity, config: ScoreConfig, single_pass: bool) -> dict:
    """The run's provenance, written once (first invocation) beside its parts."""
    file = run_dir / "run.json"
    if file.exists():
        return json.loads(file.read_text())
    manifest = {
        **asdict(ident),
        "single_pass": single_pass,
        "config": {**asdict(config), "max_length": ident.max_length},
        "started_at": datetime.now().isoformat(),
    }
    write_atomically(file, json.dumps(manifest, indent=2))
    return manifest


def pending(config: ScoreConfig, run_id: str, run_dir: Path) -> list[str]:
    """This shard's trajectories that neither the store nor a part of the run holds."""
    in_parts = part_ids(run_dir)
    with open_store(config.db, read_only=True) as store:
        ids = store.run("score/trajectory_ids", dataset=config.dataset, unscored_in=run_id, ids=None)
    index, count = config.shard
    return [
        t
        for t, dataset, question in ids.select("trajectory_id", "dataset", "question_id").iter_rows()
        if t not in in_parts and shard_of(dataset, question, count) == index
    ]


def pending_alone(config: ScoreConfig, run_id: str, run_dir: Path) -> list[str]:
    """This shard's trajectories that IFD's alone pass has still to score: one per token sequence
    of the run with a scored turn and no alone rows in the store or in an alone part."""
    in_parts = part_ids(run_dir, "alone")
    with open_store(config.db, read_only=True) as store:
        ids = store.run("score/alone_pending", run_id=run_id, dataset=config.dataset)
    index, count = config.shard
    return [
        t
        for t, dataset, question in ids.select("trajectory_id", "dataset", "question_id").iter_rows()
        if t not in in_parts and shard_of(dataset, question, count) == index
    ]


def take_in(config: ScoreConfig, manifest: dict) -> dict:
    """Insert every complete part of the run into the store (idempotent), then remove them."""
    run_id = manifest["run_id"]
    run_dir = parts_dir(config.db, run_id)
    with open_store(config.db, read_only=False) as store:
        # Listed and removed under the write lock: a worker that took them in before us removed
        # them before letting go, and none can vanish while we read them.
        parts = sorted(str(p) for p in run_dir.glob("part-*.parquet"))
        alone = sorted(str(p) for p in run_dir.glob("alone-*.parquet"))
        counts, left = _take_in(store, config, manifest, parts, alone)
        for part in parts + alone:
            Path(part).unlink(missing_ok=True)
    return {**counts, "unscored": left}


def _take_in(store: Store, config: ScoreConfig, manifest: dict, parts: list[str], alone: list[str]) -> tuple[dict, int]:
    run_id = manifest["run_id"]
    with store.transaction() as con:
        run_row = {
            k: manifest[k]
            for k in (
                "run_id",
                "student",
                "weights_hash",
                "tokenizer_hash",
                "backend",
                "dtype",
                "max_length",
                "single_pass",
                "code_version",
            )
        }
        con.execute(
            queries.sql_text("score/register_run"),
            {
                **run_row,
                "config": json.dumps(manifest["config"]),
                "started_at": datetime.fromisoformat(manifest["started_at"]),
            },
        )
        if parts:
            con.execute(queries.sql_text("score/take_in_turns"), {"run_id": run_id, "files": parts})
            con.execute(queries.sql_text("score/take_in_trajectories"), {"run_id": run_id, "files": parts})
        if alone:  # after the trajectories: their rows name the token sequence each alone row belongs to
            con.execute(queries.sql_text("score/take_in_alone"), {"run_id": run_id, "files": alone})
        left = queries.run(con, "score/trajectory_ids", dataset=config.dataset, unscored_in=run_id, ids=None).height
        alone_left = (
            queries.run(con, "score/alone_pending", run_id=run_id, dataset=config.dataset).height if config.ifd else 0
        )
        con.execute(
            queries.sql_text("score/finish_run"), {"run_id": run_id, "complete": left == 0, "now": datetime.now()}
        )
        counts = queries.frame(
            con, "SELECT trajectories, tokens, finished_at FROM scoring_runs WHERE run_id = $r", {"r": run_id}
        ).row(0, named=True)
    return {**counts, "alone_left": alone_left}, left


@dataclass(frozen=True)
class ScoreResult:
    """What one `score` invocation did (this shard) and where its run stands (all shards)."""

    run_id: str
    student: str
    shard: tuple[int, int]
    scored: int  # trajectories this invocation scored
    tokens: int  # their rendered tokens
    seconds: float
    forwarded: int  # tokens through the model: prefixes shared by several trajectories count once
    prefix_reuse: str  # on, off, why not, or "-" when nothing was scored
    repeats: int  # repeated sequences scored once
    single_pass: bool  # the template has the prefix property: one pass per trajectory
    fallback: int  # trajectories scored turn by turn
    max_length: int
    truncated: int  # trajectories cut at max_length
    empty: int  # of them, with no assistant turn left
    run_trajectories: int  # the run's trajectories in the store, every shard so far
    run_tokens: int  # their supervised tokens
    unscored: int  # trajectories of the store the run has not scored yet
    workers: tuple[str, ...] = ()  # with --ray: what each worker did, a line each
    ranks: str = "-"  # the clip of token ranks (RSR), why there are none, or "-" when nothing was scored
    ifd: bool = False  # the invocation ran IFD's alone pass
    alone_scored: int = 0  # token sequences the alone pass scored (one trajectory each)
    alone_tokens: int = 0  # their rendered tokens, every turn alone
    alone_seconds: float = 0.0
    alone_left: int = 0  # token sequences of the run still without alone rows (every shard)

    @property
    def tokens_per_s(self) -> float:
        """Rendered tokens a second of scoring (0 when nothing was scored)."""
        return self.tokens / self.seconds if self.seconds else 0.0

    def lines(self) -> list[str]:
        """The summary `curate score` prints, `run_id=ID` last."""
        index, count = self.shard
        single = "yes" if self.single_pass else "no (template fails the prefix check)"
        state = "finished" if self.unscored == 0 else f"{self.unscored} trajectories still unscored"
        return [
            f"scored {self.scored} trajectories of shard {index}/{count} under {self.student}: "
            f"{self.tokens:,} tokens ({self.tokens_per_s:,.0f} tokens/s), {self.forwarded:,} tokens forwarded "
            f"(prefix reuse: {self.prefix_reuse}; repeated sequences scored once: {self.repeats}); single pass: "
            f"{single}; turn by turn: {self.fallback}; "
            f"truncated at {self.max_length} tokens: {self.truncated} ({self.empty} with no turn left)",
            f"token ranks (RSR): {self.ranks}",
            *self.ifd_lines(),
            *self.workers,
            f"run {self.run_id}: {self.run_trajectories} trajectories, {self.run_tokens} supervised tokens; {state}",
            f"run_id={self.run_id}",
        ]

    def ifd_lines(self) -> list[str]:
        """What the alone pass did, a line (none without --ifd)."""
        if not self.ifd:
            return []
        rate = self.alone_tokens / self.alone_seconds if self.alone_seconds else 0.0
        left = (
            "every sequence of the run has it" if not self.alone_left else f"{self.alone_left} sequences still without"
        )
        return [
            f"IFD alone pass: {self.alone_scored} token sequences, {self.alone_tokens:,} tokens in "
            f"{self.alone_seconds:.1f} s ({rate:,.0f} tokens/s); {left}"
        ]


def score(config: ScoreConfig) -> ScoreResult:
    """Score the store's pending trajectories under the student and take the results in; with
    `config.ifd`, then IFD's alone pass over the run's trajectories that lack it."""
    from transformers import AutoTokenizer

    if config.backend not in BACKENDS:
        raise ValueError(f"--backend {config.backend!r}: expected one of {', '.join(BACKENDS)}")
    open_store(config.db, read_only=True).close()  # a --db that is no store fails before the student loads
    path = resolve_student(config.student)
    tokenizer = AutoTokenizer.from_pretrained(path)
    ident = identify(config, path, tokenizer)
    run_dir = parts_dir(config.db, ident.run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    label = f"{config.shard[0]}of{config.shard[1]}"
    for kind in ("part", "alone"):
        for stale in run_dir.glob(f".{kind}-{label}-*.tmp"):  # left by a killed worker of this shard
            stale.unlink(missing_ok=True)
    single_pass = prefix_consistent(tokenizer, PROBE)
    manifest = _manifest(run_dir, ident, config, single_pass)
    todo = pending(config, ident.run_id, run_dir)
    stats = _stats()
    alone_stats = _stats()
    student = _Student(config, path, tokenizer, ident.max_length, single_pass)
    try:
        if todo:
            _score(config, student, ident, single_pass, todo, stats)
        run = take_in(config, manifest)
        alone: list[str] = []
        if config.ifd:
            alone = pending_alone(config, ident.run_id, run_dir)
            if alone:
                _score(config, student, ident, single_pass, alone, alone_stats, alone=True)
                run = take_in(config, manifest)
    finally:  # vLLM's engine processes stop now, also after an error, not at interpreter exit
        student.close()
    return ScoreResult(
        run_id=ident.run_id,
        student=ident.student,
        shard=config.shard,
        scored=len(todo),
        tokens=stats["rendered"],
        seconds=stats["seconds"],
        forwarded=stats["forwarded"],
        prefix_reuse=stats.get("prefix_reuse", "-"),
        repeats=stats["repeats"],
        single_pass=single_pass,
        fallback=stats["fallback"],
        max_length=ident.max_length,
        truncated=stats["truncated"],
        empty=stats["empty"],
        run_trajectories=run["trajectories"],
        run_tokens=run["tokens"],
        unscored=run["unscored"],
        workers=stats.get("workers", ()) + alone_stats.get("workers", ()),
        ranks=stats.get("ranks", "-"),
        ifd=config.ifd,
        alone_scored=len(alone),
        alone_tokens=alone_stats["rendered"],
        alone_seconds=alone_stats["seconds"],
        alone_left=run["alone_left"],
    )


def _stats() -> dict[str, Any]:
    """What scoring blocks counts up, all 0."""
    return dict.fromkeys(("rendered", "forwarded", "repeats", "fallback", "truncated", "empty", "seconds"), 0)


class _Student:
    """The scoring backend of one invocation: loaded and checked on first use (a run with nothing
    pending loads nothing), then shared by its passes, closed once."""

    def __init__(self, config: ScoreConfig, path: Path, tokenizer: Any, max_length: int, single_pass: bool) -> None:
        self.config, self.path, self.tokenizer = config, path, tokenizer
        self.max_length, self.single_pass = max_length, single_pass
        self.backend: Any = None

    def get(self) -> Any:
        if self.backend is None:
            self.backend = make_backend(self.config, self.path, self.max_length)
            if hasattr(self.backend, "check"):
                probe = render(self.tokenizer, PROBE) if self.single_pass else render_last_turn(self.tokenizer, PROBE)
                self.backend.check(probe.input_ids[:CHECK_TOKENS])
        return self.backend

    def close(self) -> None:
        if self.backend is not None and hasattr(self.backend, "close"):
            self.backend.close()


def _score(
    config: ScoreConfig,
    student: _Student,
    ident: RunIdentity,
    single_pass: bool,
    todo: list[str],
    stats: dict,
    alone: bool = False,
) -> None:
    """Score `todo` (with `alone`, IFD's alone pass) into parts, here or on Ray; `stats` gains the
    counts, whether prefixes were reused and tokens ranked, and on Ray a line per worker."""
    from tqdm import tqdm

    run_dir = parts_dir(config.db, ident.run_id)
    what = "alone pass" if alone else "score"
    if not config.ray:
        student.get()  # loaded (or refused) before the progress bar shows
    start = time.perf_counter()
    with tqdm(
        total=len(todo),
        unit="traj",
        desc=f"{what} {ident.run_id}" + (" on ray" if config.ray else ""),
        disable=not config.progress,
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:
        if config.ray:
            from .cluster import score_on_ray

            done = score_on_ray(config, ident, single_pass, todo, run_dir, stats, open_store, bar.update, alone)
            stats["workers"] = tuple(worker.line("tokens") for worker in done.workers)
        else:
            _score_here(config, student, ident, single_pass, todo, stats, alone, bar, start)
    stats["seconds"] = time.perf_counter() - start


def _score_here(
    config: ScoreConfig,
    student: _Student,
    ident: RunIdentity,
    single_pass: bool,
    todo: list[str],
    stats: dict,
    alone: bool,
    bar: Any,
    start: float,
) -> None:
    """Score `todo` block by block into parts in this process."""
    backend = student.get()
    run_dir = parts_dir(config.db, ident.run_id)
    label = f"{config.shard[0]}of{config.shard[1]}"

    def on_batch(tokens: int) -> None:
        stats["forwarded"] += tokens
        bar.set_postfix_str(f"{stats['forwarded'] / (time.perf_counter() - start):,.0f} tok/s", refresh=True)

    for i in range(0, len(todo), config.part_size):
        block = todo[i : i + config.part_size]
        with open_store(config.db, read_only=True) as store:
            chats = stored_chats(store.con, block)
        frame = score_block(
            backend, student.tokenizer, chats, block, single_pass, ident.max_length, on_batch, stats, alone
        )
        write_part(run_dir, label, frame, "alone" if alone else "part")
        per_traj = frame.unique("trajectory_id")
        stats["fallback"] += per_traj.filter(pl.col("fallback").is_not_null()).height
        stats["truncated"] += per_traj.filter(pl.col("truncated")).height
        stats["empty"] += per_traj.filter(pl.col("truncated") & pl.col("turn").is_null()).height
        bar.update(len(block))
    stats["prefix_reuse"], stats["ranks"] = prefix_reuse(backend), ranking(backend)


def score_store(db: str | Path, student: str, **settings: Any) -> ScoreResult:
    """Score a store under a student with default settings (overridable); `.run_id` names the run."""
    return score(replace(ScoreConfig(db=str(db), student=student), **settings))


def nll_extremes(con: duckdb.DuckDBPyConnection, run_id: str, n: int = 5) -> pl.DataFrame:
    """The n lowest- and n highest-NLL trajectories of a scoring run."""
    return queries.run(con, "runs/nll_extremes", run_id=run_id, n=n)
