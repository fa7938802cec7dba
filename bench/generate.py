"""`curate generate` (batched) against a one-run-at-a-time loop (the release's way), side by side.

    python -m bench.generate [--model smollm2] [--questions 4] [--k 4] [--max-steps 3] [--max-new-tokens 96]
                             [--slots 16] [--out bench_out/generate] [--vllm PYTHON]

Same model, questions (the first N of MATH-500), tools (python) and seeds on every side, each into
its own store through the same `generate` code and the same transformers backend:

- one at a time (the release's way, the baseline): one run after the other (`--slots 1`), every
  step one generation call for that run alone; the backend keeps the run's key/value cache, so each
  step computes only the tokens the run added (its last completion and observation) — what the
  release gets from its model server's prefix cache;
- curate generate: `--slots` runs in flight, one batched generation call per step for all of them,
  each row computing only its own new tokens and leaving the batch when it ends;
- with `--vllm PYTHON`: curate generate on the vLLM backend, same `--slots`, run by PYTHON, a Python
  with vLLM installed (`.venv-vllm/bin/python` on CPUs, with `VLLM_CPU_KVCACHE_SPACE=1`; vLLM pins
  other library versions). Its samples are vLLM's draws, so its transcripts differ from the other
  sides', and its CPU time is not shown (the work runs in vLLM's engine process).

Prints the machine's load, then per side: runs, generated tokens, wall and CPU seconds, runs/s,
generated tokens/s, and the speed-up over one at a time; and how many transcripts are identical
to one at a time's (the same seeds give the same samples whatever the batch, up to float rounding).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import time
from pathlib import Path

from curate.engine.cpu.threads import described, set_wait_policy


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _side(
    name: str, out: Path, questions: Path, args: argparse.Namespace, slots: int, engine: str = "transformers"
) -> dict:
    from curate.agent.backends import make_backend
    from curate.agent.generate import GenerateConfig, generate

    db = out / f"{name}.duckdb"
    db.unlink(missing_ok=True)
    # Built before the clock starts on every side (model load; vLLM's engine start).
    backend = make_backend(engine, args.model)
    cfg = GenerateConfig(
        questions=str(questions),
        dataset="bench",
        model=args.model,
        k=args.k,
        tools=("python",),
        max_steps=args.max_steps,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        limit=args.questions,
        slots=slots,
    )
    wall, cpu = time.perf_counter(), _cpu()
    summary = generate(db, cfg, progress=False, backend=backend)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    backend.close()
    return {
        "side": name,
        "db": db,
        "runs": summary.written,
        "tokens": summary.tokens,
        "wall": wall,
        "cpu": cpu if engine == "transformers" else None,
    }


def _vllm_side(python: str, args: argparse.Namespace) -> dict:
    """The vLLM side, run by another Python (the one with vLLM); its figures come back as JSON."""
    command = [
        python,
        "-m",
        "bench.generate",
        "--model",
        args.model,
        "--questions",
        str(args.questions),
        "--k",
        str(args.k),
        "--max-steps",
        str(args.max_steps),
        "--max-new-tokens",
        str(args.max_new_tokens),
        "--slots",
        str(args.slots),
        "--seed",
        str(args.seed),
        "--out",
        args.out,
        "--vllm-side",
    ]
    side = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout.splitlines()[-1])
    return {**side, "db": Path(side["db"])}


def _transcripts(db: Path) -> dict:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return dict(con.execute("SELECT question_id || '/' || sample_idx, content_hash FROM trajectories").fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--questions", type=int, default=4, help="first N questions of MATH-500")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--slots", type=int, default=16, help="runs in flight (curate generate's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench_out/generate")
    parser.add_argument("--vllm", metavar="PYTHON", help="add a side on the vLLM backend, run by this Python")
    parser.add_argument("--vllm-side", action="store_true", help=argparse.SUPPRESS)  # that side's own process
    args = parser.parse_args()
    set_wait_policy()  # as `curate` itself does (curate.cli.main), before torch is imported

    from curate.shared_data import require_shared_data

    questions = require_shared_data() / "questions/math/test/math_500_20250414.json"
    out = Path(args.out)
    if args.vllm_side:
        side = _side("curate_generate_vllm", out, questions, args, slots=args.slots, engine="vllm")
        print(json.dumps({**side, "db": str(side["db"])}))
        return
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    load = os.getloadavg()
    print(
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores; {args.model}, "
        f"{args.questions} MATH-500 questions x K={args.k}, max {args.max_steps} steps x {args.max_new_tokens} "
        f"tokens, tools: python; {described()}"
    )
    sides = [
        _side("one_at_a_time", out, questions, args, slots=1),
        _side("curate_generate", out, questions, args, slots=args.slots),
    ]
    if args.vllm:
        sides.append(_vllm_side(args.vllm, args))
    reference = _transcripts(sides[0]["db"])
    base = sides[0]["runs"] / sides[0]["wall"]
    print(
        f"{'side':<22}{'runs':>6}{'tokens':>8}{'wall s':>9}{'CPU s':>8}{'runs/s':>9}{'tokens/s':>10}"
        f"{'speed-up':>10}{'same runs':>11}"
    )
    for s in sides:
        same = sum(reference.get(k) == v for k, v in _transcripts(s["db"]).items())
        cpu = "-" if s["cpu"] is None else f"{s['cpu']:.1f}"
        print(
            f"{s['side']:<22}{s['runs']:>6}{s['tokens']:>8}{s['wall']:>9.1f}{cpu:>8}"
            f"{s['runs'] / s['wall']:>9.3f}{s['tokens'] / s['wall']:>10.1f}"
            f"{s['runs'] / s['wall'] / base:>9.2f}x{same:>7}/{s['runs']}"
        )
    load = os.getloadavg()
    print(f"load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
