"""`curate score` vs the paper's per-turn loop on real MINT runs with a real student, side by side.

The store: the runs of the first --questions GSM8K questions (task id order) by the first --runs
teacher models (file order), from ../shared/data/trajectories/mint/mint_gsm8k.jsonl.gz. The
student: SmolLM2-135M-Instruct (float32, CPU) unless --student says otherwise. Each path runs as
its own process, timed from start to exit (interpreter, imports, model load, store reads, scoring,
writing), with its own peak RSS:
- `curate score`, as a user runs it (once per setting in --settings; the default compares prefix
  reuse on and off);
- the per-turn loop of the paper: for every assistant turn, the history up to and including that
  turn rendered with the chat template, one plain HF forward (batch 1, full logits), cross-entropy
  over the turn's tokens (tests/reference.py, the reference the tests check against).
It prints the tokens each path pushes through the model, tokens/s over the rendered trajectory
tokens (the same numerator for every path), whole-process seconds, peak RSS, the speed-up over the
per-turn loop and the largest |trajectory NLL difference| from it. The machine's load average is
printed before and after (a loaded machine slows every path alike; compare the ratios).

Run: python -m bench.score_real [--questions 2] [--runs 12] [--student smollm2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASET = "mint_gsm8k"
SETTINGS = {"prefix-reuse": [], "no-prefix-reuse": ["--no-prefix-reuse"]}


def write_subset(questions: int, runs: int, path: Path) -> int:
    """Copy the runs of the first `questions` task ids by the first `runs` models into a MINT file."""
    from curate.shared_data import require_shared_data

    source = require_shared_data() / "trajectories" / "mint" / "mint_gsm8k.jsonl.gz"
    with gzip.open(source, "rt") as fh:
        records = [json.loads(line) for line in fh]
    keep = set(sorted({r["task"]["task_id"] for r in records}, key=int)[:questions])
    models = list(dict.fromkeys(r["model"] for r in records))[:runs]
    chosen = [r for r in records if r["task"]["task_id"] in keep and r["model"] in models]
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        for record in chosen:
            fh.write((json.dumps(record) + "\n").encode())
    return len(chosen)


def build_store(folder: Path, questions: int, runs: int) -> Path:
    """The subset ingested into a fresh store."""
    from curate.ingest import IngestOptions, ingest
    from curate.store import Store

    subset = folder / "runs.jsonl.gz"
    write_subset(questions, runs, subset)
    db = folder / "store.duckdb"
    with Store(db) as store:
        ingest(store, [subset], DATASET, "mint", IngestOptions(progress=False))
    return db


def shape(db: Path, student: Path, max_length: int) -> dict:
    """Rendered tokens, assistant turns, and the tokens the per-turn loop feeds (one pass per turn)."""
    from transformers import AutoTokenizer

    from curate.render import render, stored_chats
    from curate.store import Store

    tokenizer = AutoTokenizer.from_pretrained(student)
    with Store(db, read_only=True) as store:
        ids = store.sql("SELECT trajectory_id FROM trajectories")["trajectory_id"].to_list()
        chats = stored_chats(store.con, ids)
    tokens = turns = per_turn = 0
    for tid in ids:
        r = render(tokenizer, chats[tid])
        ends = [max(i for i, t in enumerate(r.turn) if t == m) + 1 for m in range(r.n_turns)]
        tokens += min(len(r.input_ids), max_length)
        turns += r.n_turns
        per_turn += sum(min(end, max_length) for end in ends)
    return {"trajectories": len(ids), "tokens": tokens, "turns": turns, "per_turn_tokens": per_turn}


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Run a command; (wall seconds, peak RSS MiB, stdout)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "TQDM_DISABLE": "1"})
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read()
        proc.stderr.close()
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd[:6])} ... failed ({proc.returncode}):\n{err[-3000:]}")
        out.seek(0)
        return seconds, usage.ru_maxrss / 1024, out.read()


def curate_nll(db: Path, run_id: str) -> dict[str, float]:
    from curate.store import Store

    with Store(db, read_only=True) as store:
        rows = store.sql("SELECT trajectory_id, nll FROM trajectory_nll WHERE run_id = $r AND nll IS NOT NULL",
                         r=run_id)
    return dict(rows.iter_rows())


def reference_child(db: Path, student: Path, max_length: int, out: Path) -> None:
    """The per-turn loop as a user would write it; trajectory NLLs to `out` (JSON)."""
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, str(ROOT / "tests"))
    from reference import reference_turns

    from curate.render import stored_chats
    from curate.store import Store

    model = AutoModelForCausalLM.from_pretrained(student, dtype="float32").eval()
    tokenizer = AutoTokenizer.from_pretrained(student)
    with Store(db, read_only=True) as store:
        ids = store.sql("SELECT trajectory_id FROM trajectories ORDER BY trajectory_id")["trajectory_id"].to_list()
        chats = stored_chats(store.con, ids)
    nll = {}
    for tid in ids:
        turns = reference_turns(model, tokenizer, chats[tid], max_length)
        if turns:
            nll[tid] = float(np.mean([s / n for n, s in turns.values()]))
    out.write_text(json.dumps(nll))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=2)
    parser.add_argument("--runs", type=int, default=12, help="teacher models (runs) per question")
    parser.add_argument("--student", default="smollm2")
    parser.add_argument("--max-length", type=int, default=4096)
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--reference-child", nargs=3, metavar=("DB", "STUDENT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_child:
        db, student, out = args.reference_child
        reference_child(Path(db), Path(student), args.max_length, Path(out))
        return

    from curate.models import resolve_student

    student = resolve_student(args.student)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = build_store(folder, args.questions, args.runs)
        info = shape(db, student, args.max_length)
        rows = {}
        for name in args.settings:
            copy = folder / f"{name}.duckdb"
            shutil.copy(db, copy)
            cmd = [sys.executable, "-c", "from curate.cli import main; raise SystemExit(main())", "score",
                   "--db", str(copy), "--student", str(student), "--max-length", str(args.max_length),
                   "--no-progress", *SETTINGS[name]]
            seconds, rss, out = timed(cmd)
            run_id = out.strip().splitlines()[-1].removeprefix("run_id=")
            forwarded = int(re.search(r"([\d,]+) tokens forwarded", out).group(1).replace(",", ""))
            rows[f"curate score, {name}"] = {"seconds": seconds, "rss": rss, "forwarded": forwarded,
                                             "nll": curate_nll(copy, run_id)}
        out_file = folder / "reference.json"
        cmd = [sys.executable, "-m", "bench.score_real", "--max-length", str(args.max_length),
               "--reference-child", str(db), str(student), str(out_file)]
        seconds, rss, _ = timed(cmd)
        reference = json.loads(out_file.read_text())
        rows["per-turn loop (HF forward per turn)"] = {"seconds": seconds, "rss": rss,
                                                       "forwarded": info["per_turn_tokens"], "nll": reference}
    load_after = os.getloadavg()

    print(f"store: {info['trajectories']} real MINT GSM8K runs ({args.questions} questions x {args.runs} teacher "
          f"models), {info['tokens']:,} rendered tokens, {info['turns']} assistant turns; student {args.student} "
          f"float32 on CPU, torch threads {os.cpu_count()} cores; max length {args.max_length}")
    print(f"load average (1 min) before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    base = rows["per-turn loop (HF forward per turn)"]
    print(f"{'':<38}{'forwarded':>10}{'seconds':>9}{'tokens/s':>10}{'peak RSS MiB':>14}{'speed-up':>10}"
          f"{'max |dNLL|':>12}")
    for label, r in rows.items():
        gap = max(abs(r["nll"][t] - v) for t, v in reference.items())
        print(f"{label:<38}{r['forwarded']:>10,}{r['seconds']:>9.1f}{info['tokens'] / r['seconds']:>10,.0f}"
              f"{r['rss']:>14,.0f}{base['seconds'] / r['seconds']:>9.2f}x{gap:>12.1e}")
    if "curate score, prefix-reuse" in rows and "curate score, no-prefix-reuse" in rows:
        on, off = rows["curate score, prefix-reuse"], rows["curate score, no-prefix-reuse"]
        print(f"prefix reuse alone: {off['seconds'] / on['seconds']:.2f}x whole process, "
              f"{off['forwarded'] / on['forwarded']:.2f}x fewer tokens forwarded")


if __name__ == "__main__":
    main()
