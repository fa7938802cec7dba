"""`curate score` vs the paper's per-turn loop on real MINT runs with a real student, side by side.

The store: the runs of the first --questions questions (task id order) by the first --runs
teacher models (file order) of ../shared/data/trajectories/mint/mint_<--set>.jsonl.gz (gsm8k or
math). The student:
SmolLM2-135M-Instruct (float32, CPU) unless --student says otherwise. Each path runs as its own
process, timed from start to exit (interpreter, imports, model load, store reads, scoring,
writing), with its own CPU seconds and peak RSS:
- `curate score` as a user runs it, with prefix reuse (the default) and with --no-prefix-reuse,
  and with prefix reuse once more after the loop (a shared machine's speed drifts by 10-20% within
  minutes: the two timings, minutes apart, show how much);
- the per-turn loop of the paper: for every assistant turn, the history up to and including it
  rendered with the chat template, one plain HF forward (batch 1, full logits), cross-entropy over
  the turn's tokens (tests/reference.py, the reference the tests check against).
It prints the tokens each path pushes through the model, tokens/s over the rendered trajectory
tokens (the same numerator for every path), the speed-up over the per-turn loop (wall and CPU) and
the largest |trajectory NLL difference| from it. Target: >= 5x whole process, |dNLL| < 1e-4. The
machine's load is printed: on a shared machine CPU seconds are steadier than wall time.
Then the cost per forwarded token, in this process, on the first --per-token trajectories whole:
one plain HF forward (batch 1, full logits, cross-entropy at the scored positions) against
curate's pass over the same tokens (its model as `curate score` sets it up), alternating, CPU
seconds of each.

Run: python -m bench.score_real [--set gsm8k|math] [--questions 2] [--runs 12] [--student smollm2]
     [--max-length 4096] [--per-token 4]
     [--before CHECKOUT]   (also time the `curate score` of another checkout, e.g. `git worktree add`
                            of an earlier commit: before/after in one run)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.score import CURATE, NO_REUSE, report, run_curate, run_reference, store_shape
from curate.engine.cpu.threads import described, set_wait_policy

SETS = ("gsm8k", "math")


def write_subset(name: str, questions: int, runs: int, path: Path) -> int:
    """Copy the runs of the first `questions` task ids by the first `runs` models into a MINT file."""
    from curate.shared_data import require_shared_data

    source = require_shared_data() / "trajectories" / "mint" / f"mint_{name}.jsonl.gz"
    with gzip.open(source, "rt") as fh:
        records = [json.loads(line) for line in fh]
    keep = set(sorted({r["task"]["task_id"] for r in records}, key=int)[:questions])
    models = list(dict.fromkeys(r["model"] for r in records))[:runs]
    chosen = [r for r in records if r["task"]["task_id"] in keep and r["model"] in models]
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        for record in chosen:
            fh.write((json.dumps(record) + "\n").encode())
    return len(chosen)


def build_store(folder: Path, name: str, questions: int, runs: int) -> Path:
    """The subset ingested into a fresh store."""
    from curate.ingest import IngestOptions, ingest
    from curate.store import Store

    subset = folder / "runs.jsonl.gz"
    write_subset(name, questions, runs, subset)
    db = folder / "store.duckdb"
    with Store(db) as store:
        ingest(store, [subset], f"mint_{name}", "mint", IngestOptions(progress=False))
    return db


def checkout_env(folder: Path, checkout: Path) -> dict:
    """Environment that runs the curate of another checkout: its package, with the folders it
    installs under `curate` (sql, analysis, train, figures) linked in, first on the path."""
    package = folder / "before" / "curate"
    package.mkdir(parents=True)
    for entry in (checkout / "curate").iterdir():
        (package / entry.name).symlink_to(entry)
    for name in ("sql", "analysis", "train", "figures"):
        (package / name).symlink_to(checkout / name)
    return {"PYTHONPATH": str(package.parent)}


def older_store(db: Path) -> Path:
    """A copy of the store without the scoring columns added since the first schema 2."""
    import duckdb

    copy = db.with_name("older.duckdb")
    shutil.copy(db, copy)
    with duckdb.connect(str(copy)) as con:
        for column in ("fallback", "sequence_hash"):
            con.execute(f"ALTER TABLE trajectory_scores DROP COLUMN IF EXISTS {column}")
    return copy


def per_token(db: Path, student: Path, max_length: int, count: int) -> dict[str, float]:
    """CPU seconds of a plain batch-1 forward with full logits and of curate's pass, on the same
    whole trajectories (the first `count`), each timed alone, the two alternating."""
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curate.render import render, stored_chats
    from curate.score.nll import TransformersBackend, supervised_nll
    from curate.store import Store

    model = AutoModelForCausalLM.from_pretrained(student, dtype="float32").eval()
    engine = TransformersBackend(str(student)).engine  # as curate score sets it up on a CPU
    tokenizer = AutoTokenizer.from_pretrained(student)
    with Store(db, read_only=True) as store:
        ids = store.sql("SELECT trajectory_id FROM trajectories ORDER BY trajectory_id LIMIT $n", n=count)
        chats = stored_chats(store.con, ids["trajectory_id"].to_list())

    def plain(seq: list[int], turn: list[int]) -> Any:
        with torch.no_grad():
            x = torch.tensor([seq])
            losses = torch.nn.functional.cross_entropy(model(x).logits[0, :-1], x[0, 1:], reduction="none")
            return losses[torch.tensor(turn[1:]) >= 0].double().numpy()

    seqs = [(r.input_ids[:max_length], r.turn[:max_length]) for r in (render(tokenizer, c) for c in chats.values())]
    plain(*seqs[0]), supervised_nll(engine, seqs[:1])  # first calls pay one-off set-up: untimed
    out = {"tokens": 0, "plain": 0.0, "curate": 0.0, "gap": 0.0}
    for seq, turn in seqs:
        start = time.process_time()
        theirs = plain(seq, turn)
        out["plain"] += time.process_time() - start
        start = time.process_time()
        (ours,) = supervised_nll(engine, [(seq, turn)])
        out["curate"] += time.process_time() - start
        out["tokens"] += len(seq)
        out["gap"] = max(out["gap"], float(abs(ours - theirs).max()))
    return out


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """The options that pick the MINT subset and the student (this bench's and bench.rsr's)."""
    parser.add_argument("--set", choices=SETS, default="gsm8k", help="MINT data set")
    parser.add_argument("--questions", type=int, default=2)
    parser.add_argument("--runs", type=int, default=12, help="teacher models (runs) per question")
    parser.add_argument("--student", default="smollm2")
    parser.add_argument("--max-length", type=int, default=4096)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_store_options(parser)
    parser.add_argument("--per-token", type=int, default=4, help="trajectories for the per-token comparison")
    parser.add_argument("--before", type=Path, help="also time `curate score` of this checkout (an earlier commit)")
    args = parser.parse_args()
    set_wait_policy()  # as curate's CLI does; the loop's process and curate's inherit it
    import torch

    from curate.models import resolve_student

    student = resolve_student(args.student)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        db = build_store(Path(tmp), args.set, args.questions, args.runs)
        shape = store_shape(db, student, args.max_length)
        rows = {label: run_curate(db, student, flags, args.max_length) for label, flags in (CURATE, NO_REUSE)}
        if args.before:
            rows[f"curate score of {args.before.name}"] = run_curate(
                older_store(db),
                student,
                ["--no-progress"],
                args.max_length,
                checkout_env(Path(tmp), args.before.resolve()),
            )
        rows["per-turn loop (HF forward per turn)"] = run_reference(db, student, args.max_length, shape)
        rows["curate, again after the loop"] = run_curate(db, student, CURATE[1], args.max_length)
        cost = per_token(db, student, args.max_length, args.per_token)
    report(
        f"real MINT {args.set} runs ({args.questions} questions x {args.runs} teacher models) under {args.student}",
        shape,
        rows,
        "per-turn loop (HF forward per turn)",
    )
    print(
        f"per forwarded token ({cost['tokens']:,} tokens of {args.per_token} whole trajectories, batch 1): plain HF "
        f"forward {cost['tokens'] / cost['plain']:,.0f} tokens per CPU second, curate's pass "
        f"{cost['tokens'] / cost['curate']:,.0f} ({cost['plain'] / cost['curate']:.2f}x); max |dNLL| {cost['gap']:.1e}"
    )
    print(
        f"float32 on CPU, {torch.get_num_threads()} torch threads, max length {args.max_length}; load average "
        f"(1 min) {load:.1f} before, {os.getloadavg()[0]:.1f} after on {os.cpu_count()} cores; {described()}"
    )


if __name__ == "__main__":
    main()
