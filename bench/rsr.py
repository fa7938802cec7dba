"""Scoring with token ranks (RSR) vs without, side by side in one run, on real MINT runs under a real
student; and what IFD's alone pass costs beside the main pass.

The store: bench.score_real's subset (the runs of the first --questions questions by the first
--runs teacher models of ../shared/data/trajectories/mint/mint_<--set>.jsonl.gz). Its trajectories
are rendered once as `curate score` renders them (one sequence per trajectory, each distinct one
once), then scored by one backend as `curate score` sets it up (SmolLM2 in float32 on the CPU, shared
prefixes reused, its default batch), with ranks (clipped at 100) and without, alternating for
--rounds rounds in ABBA order (a shared machine's drift falls on both), each pass timed in wall and
CPU seconds. It prints both sides' totals and their ratio (target: ranks within 3%), the time spent
inside the rank comparisons themselves and the LM head's time on each side (the one step ranks
change: shares that a loaded machine's drift does not blur, as it does whole passes), and
checks that the NLLs are the same bit for bit. Then IFD's alone pass over the same trajectories (every assistant
turn as the only message of a chat, each distinct sequence once), timed the same way, beside the
main pass: tokens and seconds. With --check, `curate score --ifd` runs on the store and every
trajectory's RSR and IFD is compared with tests/reference.py's full-forward references (largest
relative difference).

Run: python -m bench.rsr [--set gsm8k|math] [--questions 2] [--runs 12] [--student smollm2]
     [--max-length 4096] [--rounds 4] [--check]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.score_real import add_store_options, build_store
from curate.engine.cpu.threads import described, set_wait_policy

ROOT = Path(__file__).resolve().parents[1]


def sequences(db: Path, tokenizer: Any, max_length: int, alone: bool) -> list[tuple[list[int], list[int]]]:
    """The distinct token sequences `curate score` scores for the store (`alone`: IFD's alone pass)."""
    from curate.render import prefix_consistent, stored_chats
    from curate.score import PROBE
    from curate.score.blocks import alone_renderings, renderings
    from curate.store import Store

    with Store(db, read_only=True) as store:
        ids = store.sql("SELECT trajectory_id FROM trajectories ORDER BY trajectory_id")["trajectory_id"].to_list()
        chats = stored_chats(store.con, ids)
    single_pass = prefix_consistent(tokenizer, PROBE)
    seen, out = set(), []
    for tid in ids:
        items = alone_renderings(tokenizer, chats[tid]) if alone else renderings(tokenizer, chats[tid], single_pass)[0]
        for _, r in items:
            seq = (r.input_ids[:max_length], r.turn[:max_length])
            key = (tuple(seq[0]), tuple(seq[1]))
            if key not in seen:
                seen.add(key)
                out.append(seq)
    return out


def clock(name: str) -> dict[str, float]:
    """Wall seconds spent in `curate.score.nll.<name>` from now on (it is wrapped)."""
    import torch

    import curate.score.nll as nll

    spent = {"seconds": 0.0}
    inner = getattr(nll, name)
    gpu = torch.cuda.is_available()  # asked once, not inside the clocked span

    def clocked(*args: Any) -> Any:
        start = time.perf_counter()
        out = inner(*args)
        if gpu:
            torch.cuda.synchronize()  # a GPU's work is done only then
        spent["seconds"] += time.perf_counter() - start
        return out

    setattr(nll, name, clocked)
    return spent


def timed(backend: Any, seqs: list, rank_clip: int | None) -> tuple[float, float, list]:
    """Wall and CPU seconds of one scoring pass over `seqs`, and its result."""
    backend.rank_clip = rank_clip
    wall, cpu = time.perf_counter(), time.process_time()
    scores = backend.scores(seqs)
    return time.perf_counter() - wall, time.process_time() - cpu, scores


def check(db: Path, student: Path, max_length: int) -> dict[str, float]:
    """`curate score --ifd` on the store, then RSR and IFD against the full-forward references."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "score")]
    from test_rsr_ifd import check_against_reference

    from curate.score import ScoreConfig, score

    run_id = score(
        ScoreConfig(db=str(db), student=str(student), max_length=max_length, ifd=True, progress=False)
    ).run_id
    model = AutoModelForCausalLM.from_pretrained(student, dtype="float32").eval()
    return check_against_reference(db, run_id, model, AutoTokenizer.from_pretrained(student), max_length)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_store_options(parser)
    parser.add_argument("--rounds", type=int, default=4, help="passes of each side, alternating")
    parser.add_argument("--check", action="store_true", help="also compare RSR and IFD with the references")
    args = parser.parse_args()
    set_wait_policy()  # as curate's CLI does
    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from curate.models import resolve_student
    from curate.score.config import ScoreConfig
    from curate.score.student import make_backend

    student = resolve_student(args.student)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        db = build_store(Path(tmp), args.set, args.questions, args.runs)
        tokenizer = AutoTokenizer.from_pretrained(student)
        main_seqs = sequences(db, tokenizer, args.max_length, alone=False)
        alone_seqs = sequences(db, tokenizer, args.max_length, alone=True)
        backend = make_backend(ScoreConfig(db=str(db), student=str(student)), student, args.max_length)
        timed(backend, main_seqs[:2], 100)  # one-off set-up (buffers, kernels): untimed
        in_ranks, in_head = clock("_clipped_ranks"), clock("head_scores")
        sides: dict[str, list[tuple[float, float]]] = {"with ranks": [], "without ranks": []}
        heads = {side: 0.0 for side in sides}
        results: dict[str, list] = {}
        for r in range(args.rounds):
            order = ("with ranks", "without ranks") if r % 2 == 0 else ("without ranks", "with ranks")
            for side in order:
                head = in_head["seconds"]
                wall, cpu, results[side] = timed(backend, main_seqs, 100 if side == "with ranks" else None)
                sides[side].append((wall, cpu))
                heads[side] += in_head["seconds"] - head
        same = all(a.nll.tobytes() == b.nll.tobytes() for a, b in zip(results["with ranks"], results["without ranks"]))
        ranking = in_ranks["seconds"]  # the main passes' share, before the alone pass adds its own
        alone = [timed(backend, alone_seqs, 100)[:2] for _ in range(max(1, args.rounds // 2))]
        gaps = check(db, student, args.max_length) if args.check else None

    tokens = sum(len(ids) for ids, _ in main_seqs)
    alone_tokens = sum(len(ids) for ids, _ in alone_seqs)
    print(
        f"real MINT {args.set} runs ({args.questions} questions x {args.runs} teacher models) under {args.student}: "
        f"{len(main_seqs)} sequences, {tokens:,} tokens; {args.rounds} passes a side, alternating"
    )
    print(f"{'':<26}{'wall s (total)':>16}{'CPU s (total)':>16}{'wall s (median)':>17}")
    for side, times in sides.items():
        wall, cpu = (sum(t[i] for t in times) for i in (0, 1))
        print(f"{side:<26}{wall:>16.2f}{cpu:>16.2f}{np.median([t[0] for t in times]):>17.2f}")
    (w1, c1), (w0, c0) = (tuple(sum(t[i] for t in sides[s]) for i in (0, 1)) for s in sides)
    print(
        f"ranks cost {100 * (w1 / w0 - 1):+.1f}% wall, {100 * (c1 / c0 - 1):+.1f}% CPU (target: within 3%); "
        f"inside the rank comparisons: {ranking:.2f} s of the {w1:.2f} s with ranks "
        f"({100 * ranking / w1:.1f}%); NLLs bit-identical: {'yes' if same else 'NO'}"
    )
    # The LM head is the only step ranks change (the forward before it is the same on both sides), so its
    # time is the ranks' cost without the drift that a shared machine adds to whole passes.
    added = heads["with ranks"] - heads["without ranks"]
    print(
        f"the LM head (all ranks change): {heads['with ranks']:.2f} s with ranks, {heads['without ranks']:.2f} s "
        f"without: ranks add {added:.2f} s, {100 * added / w1:.1f}% of the passes with them"
    )
    a_wall, a_cpu = (float(np.median([t[i] for t in alone])) for i in (0, 1))
    m_wall, m_cpu = (float(np.median([t[i] for t in sides["with ranks"]])) for i in (0, 1))
    print(
        f"IFD alone pass: {len(alone_seqs)} turns alone, {alone_tokens:,} tokens, {a_wall:.2f} s wall, {a_cpu:.2f} s "
        f"CPU (median of {len(alone)}): {100 * a_wall / m_wall:.0f}% of the main pass's wall time "
        f"({m_wall:.2f} s for {tokens:,} tokens), {100 * alone_tokens / tokens:.0f}% of its tokens"
    )
    if gaps is not None:
        print(
            f"against the full-forward references: RSR max relative difference {gaps['rsr']:.1e} (turn rank sums "
            f"{gaps['rank_sum']:.1e}), IFD {gaps['ifd']:.1e} (turn NLLs alone {gaps['alone']:.1e})"
        )
    print(
        f"float32 on CPU, {torch.get_num_threads()} torch threads, max length {args.max_length}; load average "
        f"(1 min) {load:.1f} before, {os.getloadavg()[0]:.1f} after on {os.cpu_count()} cores; {described()}"
    )


if __name__ == "__main__":
    main()
