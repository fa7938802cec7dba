"""`curate score` (one forward pass per trajectory, shared prefixes computed once, chunked LM head
at supervised positions, token-budget batches) vs the per-turn reference loop (one full-logits
pass per assistant turn), side by side on the same stores and model: whole-process seconds,
tokens/s, peak RSS, their ratios, and prefix reuse on and off.

Run (CPU; a few minutes with the defaults):
    python -m bench.score [--questions 6] [--k 4] [--hidden 256] [--layers 4] [--tokenizer qwen2.5]

Two stores, both `curate synth` HotPotQA runs ingested as smolagents logs:
- synthetic: as synth writes them (its short CodeAgent system prompt);
- agent-distillation: the same runs under a long shared system prompt (the CodeAgent prompt with
  worked examples, as the agent-distillation logs carry), where prefix reuse pays most.
The model is a random Qwen2 of the given size with the tokenizer's vocabulary (qwen2.5: 151,936
rows, so the LM head costs what it costs on a real Qwen2.5 student). Each path runs in its own
process, timed from start to exit, so time and peak RSS are its own. Tokens/s counts the rendered
trajectory tokens (the same numerator for every path); "forwarded" counts what each pushes through
the model.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from curate.engine.cpu.threads import described, set_wait_policy

ROOT = Path(__file__).resolve().parents[1]
CURATE = ("curate", ["--no-progress"])
NO_REUSE = ("curate --no-prefix-reuse", ["--no-progress", "--no-prefix-reuse"])
EXAMPLES = "\n\n".join(
    f'---\nTask: "{task}"\n\nThought: {thought}\nCode:\n```py\n{code}\n```<end_code>\nObservation: {obs}\n\n'
    f"Thought: I now have the answer.\nCode:\n```py\nfinal_answer({answer})\n```<end_code>"
    for task, thought, code, obs, answer in [
        (
            "Which city hosted the 1936 Summer Olympics, and what river runs through it?",
            "I will search for the host city first, then for its river.",
            'city = web_search(query="1936 Summer Olympics host city")\nprint(city)',
            "The 1936 Summer Olympics were held in Berlin, Germany. Berlin lies on the Spree.",
            '"Berlin, the Spree"',
        ),
        (
            "What is the result of the following operation: 5 + 3 + 1294.678?",
            "I will use python code to compute the result of the operation.",
            "result = 5 + 3 + 1294.678\nprint(result)",
            "1302.678",
            "result",
        ),
        (
            "Find the number of positive integers n below 1000 such that n^2 + n + 41 is prime.",
            "I will test every n with sympy's isprime and count.",
            "import sympy\ncount = sum(1 for n in range(1, 1000) if sympy.isprime(n * n + n + 41))\nprint(count)",
            "581",
            "581",
        ),
        (
            "Who directed the film that won Best Picture the year the Eiffel Tower turned 100?",
            "The Eiffel Tower was completed in 1889, so it turned 100 in 1989; I need the Best Picture of that year.",
            'print(web_search(query="Academy Award Best Picture 1989 ceremony winner director"))',
            "Driving Miss Daisy won Best Picture at the 62nd Academy Awards (1990), directed by Bruce Beresford.",
            '"Bruce Beresford"',
        ),
        (
            "Solve for x: 3x^2 - 12x + 9 = 0. Give both roots.",
            "I will factor the quadratic with sympy and return the roots in increasing order.",
            "import sympy\nx = sympy.symbols('x')\nroots = sorted(sympy.solve(3 * x**2 - 12 * x + 9, x))\nprint(roots)",
            "[1, 3]",
            '"1, 3"',
        ),
        (
            "How many years apart were the births of the founders of Microsoft and Apple's Steve Jobs?",
            "I need the birth years of Bill Gates, Paul Allen and Steve Jobs.",
            'for name in ["Bill Gates", "Paul Allen", "Steve Jobs"]:\n    print(name, web_search(query=f"{name} born"))',
            "Bill Gates born 28 October 1955. Paul Allen born 21 January 1953. Steve Jobs born 24 February 1955.",
            '"Gates and Jobs: same year (1955); Allen: 2 years earlier"',
        ),
    ]
    * 3
)


def agent_system_prompt() -> str:
    """The synthetic runs' CodeAgent prompt with worked examples, as long as the real ones."""
    from curate.ingest.synth import SYSTEM_PROMPT

    head, _, rules = SYSTEM_PROMPT.partition("\nOn top of performing computations")
    return (
        f"{head}\nHere are a few examples using notional tools:\n{EXAMPLES}\n\nOn top of performing computations{rules}"
    )


def build(folder: Path, args: argparse.Namespace) -> tuple[dict[str, Path], Path]:
    """The two stores (by name) and a student folder in `folder`."""
    from curate.ingest import IngestOptions, ingest
    from curate.ingest.synth import SynthConfig, write
    from curate.models.tiny import build_model, build_tokenizer
    from curate.store import Store

    runs = folder / "runs.jsonl"
    write(SynthConfig(questions=args.questions, k=args.k, source="hotpotqa", seed=0), runs)
    long_prompt = agent_system_prompt()
    with runs.open() as src, (folder / "agent.jsonl").open("w") as out:
        for line in src:
            record = json.loads(line)
            for message in (record.get("log_data") or {}).get("messages", []):
                if message["role"] == "system":
                    message["content"] = [{"type": "text", "text": long_prompt}]
            out.write(json.dumps(record) + "\n")
    stores = {}
    for name, file in (("synthetic", runs), ("agent-distillation", folder / "agent.jsonl")):
        stores[name] = folder / f"{name}.duckdb"
        with Store(stores[name]) as store:
            ingest(store, [file], "synth-hotpotqa", "smolagents", IngestOptions(progress=False))
    if args.tokenizer == "qwen2.5":
        from curate.models.qwen_tokenizer import QWEN25_EMBEDDING_ROWS, build_qwen25_tokenizer

        tokenizer, vocab = build_qwen25_tokenizer(), QWEN25_EMBEDDING_ROWS
    else:
        tokenizer = build_tokenizer()
        vocab = len(tokenizer)
    student = folder / "student"
    build_model(vocab, seed=0, hidden=args.hidden, layers=args.layers).save_pretrained(student)
    tokenizer.save_pretrained(student)
    return stores, student


def store_shape(db: Path, student: Path, max_length: int) -> dict:
    """Trajectories, rendered tokens (within max_length), assistant turns, the tokens the per-turn
    loop feeds (one pass per turn, each the history up to that turn) and the system prompt's tokens."""
    from transformers import AutoTokenizer

    from curate.render import render, stored_chats
    from curate.store import Store

    tokenizer = AutoTokenizer.from_pretrained(student)
    with Store(db, read_only=True) as store:
        ids = store.sql("SELECT trajectory_id FROM trajectories")["trajectory_id"].to_list()
        chats = stored_chats(store.con, ids)
    shape = {"trajectories": 0, "tokens": 0, "turns": 0, "per_turn_tokens": 0, "system_tokens": 0}
    for tid in ids:
        r = render(tokenizer, chats[tid])
        ends = [max(i for i, t in enumerate(r.turn) if t == m) + 1 for m in range(r.n_turns)]
        shape["trajectories"] += 1
        shape["tokens"] += min(len(r.input_ids), max_length)
        shape["turns"] += r.n_turns
        shape["per_turn_tokens"] += sum(min(end, max_length) for end in ends)
        if chats[tid] and chats[tid][0]["role"] == "system":
            shape["system_tokens"] = len(tokenizer(chats[tid][0]["content"])["input_ids"])
    return shape


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, float, str]:
    """Run a command from the repository root; (wall seconds, CPU seconds, peak RSS MiB, stdout)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status):
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd[:6])} ... failed:\n{err.read()[-3000:]}")
        out.seek(0)
        return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read()


def run_curate(db: Path, student: Path, flags: list[str], max_length: int, env: dict | None = None) -> dict:
    """`curate score` as a user runs it, on a copy of the store; its figures and trajectory NLLs."""
    from curate.store import Store

    copy = db.with_name(f"{db.stem}-{len(flags)}-{time.monotonic_ns()}.duckdb")
    shutil.copy(db, copy)
    # -P: the working directory is not put first on sys.path, so `env` can pick another checkout's
    # curate; the program's entry point, `run` (an older checkout's is `main`)
    program = "import sys, curate.cli as cli; sys.exit(cli.run() if hasattr(cli, 'run') else cli.main())"
    cmd = [
        sys.executable,
        "-P",
        "-c",
        program,
        "score",
        "--db",
        str(copy),
        "--student",
        str(student),
        "--max-length",
        str(max_length),
        *flags,
    ]
    seconds, cpu, rss, out = timed(cmd, env)
    run_id = out.strip().splitlines()[-1].removeprefix("run_id=")
    # an older curate printed the tokens it forwarded as "N tokens"
    forwarded = int(re.search(r"([\d,]+) tokens(?: forwarded|,)", out).group(1).replace(",", ""))
    with Store(copy, read_only=True) as store:
        nll = dict(
            store.sql(
                "SELECT trajectory_id, nll FROM trajectory_nll WHERE run_id = $r AND nll IS NOT NULL", r=run_id
            ).rows()
        )
    return {"seconds": seconds, "cpu": cpu, "rss": rss, "forwarded": forwarded, "nll": nll}


def reference_nlls(db: Path, student: Path, max_length: int) -> dict[str, float]:
    """The per-turn loop as a user would write it: load, render each turn's history, one
    full-logits forward pass per assistant turn; trajectory NLLs (macro average of turn means)."""
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
    return nll


def run_reference(db: Path, student: Path, max_length: int, shape: dict) -> dict:
    """The per-turn loop in its own process (`python -m bench.score --reference-child`)."""
    out_file = db.with_suffix(".reference.json")
    cmd = [
        sys.executable,
        "-m",
        "bench.score",
        "--reference-child",
        str(db),
        str(student),
        str(max_length),
        str(out_file),
    ]
    seconds, cpu, rss, _ = timed(cmd)  # with the OpenMP wait policy main() chose, as curate's side
    return {
        "seconds": seconds,
        "cpu": cpu,
        "rss": rss,
        "forwarded": shape["per_turn_tokens"],
        "nll": json.loads(out_file.read_text()),
    }


def report(title: str, shape: dict, rows: dict[str, dict], reference: str) -> None:
    """One store's table: every path beside the per-turn loop, and the gain of prefix reuse."""
    print(
        f"\n{title}: {shape['trajectories']} trajectories, {shape['tokens']:,} rendered tokens, "
        f"{shape['turns'] / shape['trajectories']:.2f} assistant turns on average, system prompt "
        f"{shape['system_tokens']:,} tokens"
    )
    base = rows[reference]
    print(
        f"{'':<34}{'forwarded':>10}{'seconds':>9}{'CPU s':>8}{'tokens/s':>10}{'peak RSS MiB':>13}"
        f"{'speed-up':>9}{'CPU ratio':>10}{'max |dNLL|':>11}"
    )
    for label, r in rows.items():
        gap = max(abs(r["nll"][t] - v) for t, v in base["nll"].items())
        print(
            f"{label:<34}{r['forwarded']:>10,}{r['seconds']:>9.1f}{r['cpu']:>8.1f}"
            f"{shape['tokens'] / r['seconds']:>10,.0f}{r['rss']:>13,.0f}{base['seconds'] / r['seconds']:>8.2f}x"
            f"{base['cpu'] / r['cpu']:>9.2f}x{gap:>11.1e}"
        )
    on, off = rows.get(CURATE[0]), rows.get(NO_REUSE[0])
    if on and off:
        print(
            f"prefix reuse alone: {off['seconds'] / on['seconds']:.2f}x whole process ({off['cpu'] / on['cpu']:.2f}x "
            f"CPU), {off['forwarded'] / on['forwarded']:.2f}x fewer tokens forwarded"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="curate score vs the per-turn reference loop")
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--tokenizer", choices=["qwen2.5", "small"], default="qwen2.5")
    parser.add_argument("--max-length", type=int, default=32768)
    parser.add_argument(
        "--reference-child", nargs=4, metavar=("DB", "STUDENT", "MAX_LENGTH", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    set_wait_policy()  # as curate's CLI does; both sides' processes inherit it
    if args.reference_child:
        db, student, max_length, out = args.reference_child
        Path(out).write_text(json.dumps(reference_nlls(Path(db), Path(student), int(max_length))))
        return
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        stores, student = build(Path(tmp), args)
        for name, db in stores.items():
            shape = store_shape(db, student, args.max_length)
            rows = {label: run_curate(db, student, flags, args.max_length) for label, flags in (CURATE, NO_REUSE)}
            rows["per-turn reference loop"] = run_reference(db, student, args.max_length, shape)
            report(f"{name} store", shape, rows, "per-turn reference loop")
    print(
        f"\nmodel: random Qwen2, hidden {args.hidden}, {args.layers} layers, {args.tokenizer} vocabulary; float32 "
        f"on CPU; load average (1 min) {load:.1f} before, {os.getloadavg()[0]:.1f} after (CPU s is steadier than "
        f"wall time on a loaded machine); {described()}"
    )


if __name__ == "__main__":
    main()
