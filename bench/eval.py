"""`curate eval` (every question of a benchmark in flight) against a one-question-at-a-time loop, side by side.

    python -m bench.eval [--model smollm2] [--benchmarks HotpotQA,MATH-500] [--questions 8]
                         [--max-steps 3] [--max-new-tokens 96] [--slots 16] [--out bench_out/eval]

Same model, benchmarks, questions, tools (python, web_search over wiki-summaries) and protocol
(temperature 0) on both sides, each into its own store through the same `evaluate` code:

- one at a time (the release's evaluation scripts): one question's run after the other, every
  step a plain `generate` over the whole prompt;
- curate eval: `--slots` questions in flight, one batched generation call per step, each row
  computing only the tokens its run added since its last step.

Prints the machine's load, then per side: questions, wall and CPU seconds, questions/s, the
speed-up, and pass@1 per benchmark (greedy runs give the same answers whatever the batch, up to
float rounding: the last column counts the questions whose final answers agree).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from pathlib import Path

from curate.engine.cpu.threads import described, set_wait_policy


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _side(name: str, out: Path, args: argparse.Namespace, slots: int, prefix_cache: bool) -> dict:
    from curate.agent.backends.transformers import TransformersBackend
    from curate.eval.evaluate import EvalConfig, evaluate

    db = out / f"{name}.duckdb"
    backend = TransformersBackend(args.model, prefix_cache=prefix_cache)
    cfg = EvalConfig(
        model=args.model,
        benchmarks=args.benchmarks,
        limit=args.questions,
        max_steps=args.max_steps,
        max_new_tokens=args.max_new_tokens,
        slots=slots,
        name=name,
    )
    wall, cpu = time.perf_counter(), _cpu()
    result = evaluate(db, cfg, progress=False, backend=backend)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    backend.close()
    answers = {(b.name, p["question_id"]): p["final_answer"] for b in result.benchmarks for p in b.predictions}
    return {"side": name, "result": result, "answers": answers, "wall": wall, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--benchmarks", default="HotpotQA,MATH-500")
    parser.add_argument("--questions", type=int, default=8, help="first N questions of each benchmark")
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--slots", type=int, default=16)
    parser.add_argument("--out", default="bench_out/eval")
    args = parser.parse_args()
    set_wait_policy()  # as `curate` itself does (curate.cli.main), before torch is imported

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    load = os.getloadavg()
    print(
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores; {args.model}, "
        f"{args.questions} questions of {args.benchmarks}, max {args.max_steps} steps x {args.max_new_tokens} "
        f"tokens, temperature 0, tools: python, web_search (wiki-summaries); {described()}"
    )
    sides = [
        _side("one_at_a_time", out, args, slots=1, prefix_cache=False),
        _side("curate_eval", out, args, slots=args.slots, prefix_cache=True),
    ]
    names = [b.name for b in sides[0]["result"].benchmarks]
    base = len(sides[0]["answers"]) / sides[0]["wall"]
    print(
        f"{'side':<16}{'questions':>10}{'wall s':>9}{'CPU s':>8}{'q/s':>8}{'speed-up':>10}"
        + "".join(f"{n:>12}" for n in names)
        + f"{'same answers':>14}"
    )
    for s in sides:
        n = len(s["answers"])
        same = sum(sides[0]["answers"][k] == v for k, v in s["answers"].items())
        passes = "".join(f"{b.pass_at_1:>11.1f}%" for b in s["result"].benchmarks)
        print(
            f"{s['side']:<16}{n:>10}{s['wall']:>9.1f}{s['cpu']:>8.1f}{n / s['wall']:>8.3f}"
            f"{n / s['wall'] / base:>9.2f}x{passes}{same:>10}/{n}"
        )
    load = os.getloadavg()
    print(f"load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
