"""The python tool's jail: what it costs against the same worker processes without it.

Side by side in one run, alternating (jail, no jail, no jail, jail) so that drift in the host's speed
falls on both: the start of a sandbox (bwrap, the zygote's imports), and the per-step cost of a
batch of steps (a fork of the run's process, the step, the JSON reply, and with the jail the sweep
that kills what a step left), for a trivial step and for the real code actions of MINT's GSM8K runs
(shared data), which is also the python tool's realistic step time. "No jail" is
`--unsafe-local-executor`: the same fork-per-step design as before the jail, with nothing around it.

Run: python -m bench.sandbox [--steps 400] [--mint 400] [--workers 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time

from curate.agent.replay import code_steps
from curate.agent.sandbox import Limits, PythonSandbox
from curate.shared_data import require_shared_data

RUNS = 16  # runs in flight, as in `curate generate`'s default slots


def mint_actions(limit: int) -> list[list[str]]:
    """The code actions of MINT GSM8K runs, run by run, until `limit` actions."""
    runs, total = [], 0
    with gzip.open(require_shared_data() / "trajectories" / "mint" / "mint_gsm8k.jsonl.gz", "rt") as lines:
        for line in lines:
            history = json.loads(line)["state"]["history"]
            steps = [s.code for s in code_steps([(m["role"], m["content"]) for m in history], "mint")]
            if steps:
                runs.append(steps)
                total += len(steps)
            if total >= limit:
                break
    return runs


def start_seconds(unsafe: bool) -> float:
    clock = time.perf_counter()
    with PythonSandbox(Limits(), unsafe=unsafe) as sandbox:
        sandbox.open()
        return time.perf_counter() - clock


def per_step_ms(unsafe: bool, runs: list[list[str]], workers: int) -> float:
    """Mean wall milliseconds per step, the runs' steps in rounds of RUNS runs (as the agent loop batches)."""
    steps = 0
    with PythonSandbox(Limits(), unsafe=unsafe, workers=workers) as sandbox:
        clock = time.perf_counter()
        for first in range(0, len(runs), RUNS):
            group = runs[first : first + RUNS]
            handles = [sandbox.open() for _ in group]
            for depth in range(max(len(r) for r in group)):
                batch = [(h, r[depth]) for h, r in zip(handles, group) if depth < len(r)]
                sandbox.run(batch)
                steps += len(batch)
            for h in handles:
                sandbox.release(h)
        return 1000 * (time.perf_counter() - clock) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="trivial steps (x += 1), 8 per run")
    parser.add_argument("--mint", type=int, default=400, help="real MINT GSM8K code actions")
    parser.add_argument("--workers", type=int, default=2, help="steps at once (default: 2, this machine's cores)")
    args = parser.parse_args()
    trivial = [["x = 0"] + ["x += 1"] * 7 for _ in range(args.steps // 8)]
    real = mint_actions(args.mint)
    rows = {
        "start (s)": lambda u: start_seconds(u),
        "trivial step (ms)": lambda u: per_step_ms(u, trivial, args.workers),
        f"MINT GSM8K action (ms), {sum(map(len, real))} actions": lambda u: per_step_ms(u, real, args.workers),
    }
    print(f"{'':48} {'jail':>9} {'no jail':>9} {'ratio':>7}")
    for name, measure in rows.items():
        jail, bare = [], []
        for unsafe in (False, True, True, False):
            (bare if unsafe else jail).append(measure(unsafe))
        a, b = statistics.mean(jail), statistics.mean(bare)
        print(f"{name:48} {a:9.2f} {b:9.2f} {a / b:6.2f}x")


if __name__ == "__main__":
    main()
