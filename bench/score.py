"""`curate score` (one forward pass per trajectory, chunked LM head at supervised positions,
token-budget batches) vs the per-turn reference loop (one full-logits pass per assistant turn),
side by side on the same synthetic store and model: tokens/s, peak RSS, and their ratio.

Run (CPU; about two minutes with the defaults):
    python -m bench.score [--questions 6] [--k 4] [--hidden 256] [--layers 4] [--tokenizer qwen2.5]

(-P keeps bench/ off sys.path: a bench script named like a standard module must not shadow it.)
The store is `curate synth` HotPotQA runs ingested as smolagents logs; the model a random Qwen2
of the given size with the tokenizer's vocabulary (qwen2.5: 151,936 rows, so the LM head costs
what it costs on a real Qwen2.5 student). Each path runs in its own process, so peak RSS is its
own. Tokens/s counts the rendered trajectory tokens (the same numerator for both paths).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(folder: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """A synthetic store and a student folder in `folder`."""
    from curate.ingest import IngestOptions, ingest
    from curate.store import Store
    from curate.synth import SynthConfig, write
    from curate.models.tiny import build_model, build_tokenizer

    runs = folder / "runs.jsonl"
    write(SynthConfig(questions=args.questions, k=args.k, source="hotpotqa", seed=0), runs)
    with Store(folder / "store.duckdb") as store:
        ingest(store, [runs], "synth-hotpotqa", "smolagents", IngestOptions(progress=False))
    if args.tokenizer == "qwen2.5":
        from curate.models.qwen_tokenizer import QWEN25_EMBEDDING_ROWS, build_qwen25_tokenizer

        tokenizer, vocab = build_qwen25_tokenizer(), QWEN25_EMBEDDING_ROWS
    else:
        tokenizer = build_tokenizer()
        vocab = len(tokenizer)
    student = folder / "student"
    build_model(vocab, seed=0, hidden=args.hidden, layers=args.layers).save_pretrained(student)
    tokenizer.save_pretrained(student)
    return folder / "store.duckdb", student


def run_curate(db: Path, student: Path) -> dict:
    """Time `curate score` end to end (model load, store reads, rendering, scoring, take-in)."""
    import contextlib
    import io

    from curate.score import ScoreConfig, score
    from curate.store import Store

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        run_id = score(ScoreConfig(db=str(db), student=str(student), progress=False))
    seconds = time.perf_counter() - start
    with Store(db, read_only=True) as store:
        nll = dict(store.sql("SELECT trajectory_id, nll FROM trajectory_nll WHERE run_id = $r", r=run_id).iter_rows())
    return {"seconds": seconds, "nll": nll}


def run_reference(db: Path, student: Path) -> dict:
    """Time the per-turn loop: render each turn's history, one full-logits forward pass per turn."""
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, str(ROOT / "tests"))
    from reference import reference_turns

    from curate.render import stored_chats
    from curate.store import Store

    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(student, dtype="float32").eval()
    tokenizer = AutoTokenizer.from_pretrained(student)
    with Store(db, read_only=True) as store:
        ids = store.sql("SELECT trajectory_id FROM trajectories ORDER BY trajectory_id")["trajectory_id"].to_list()
        chats = stored_chats(store.con, ids)
    nll = {}
    for tid in ids:
        turns = reference_turns(model, tokenizer, chats[tid], model.config.max_position_embeddings)
        if turns:
            nll[tid] = float(np.mean([s / n for n, s in turns.values()]))
    return {"seconds": time.perf_counter() - start, "nll": nll}


def store_shape(db: Path, student: Path) -> dict:
    """Trajectories, rendered tokens and mean assistant turns of the store under the student's template."""
    from transformers import AutoTokenizer

    from curate.render import render, stored_chats
    from curate.store import Store

    tokenizer = AutoTokenizer.from_pretrained(student)
    with Store(db, read_only=True) as store:
        ids = store.sql("SELECT trajectory_id FROM trajectories")["trajectory_id"].to_list()
        chats = stored_chats(store.con, ids)
    renderings = [render(tokenizer, chats[t]) for t in ids if t in chats]
    return {"trajectories": len(renderings), "tokens": sum(len(r.input_ids) for r in renderings),
            "turns": sum(r.n_turns for r in renderings) / len(renderings)}


def child(path: str, db: Path, student: Path) -> None:
    # Imports are outside both timings (transformers resolves model classes lazily).
    import transformers.models.qwen2.modeling_qwen2  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

    result = run_curate(db, student) if path == "curate" else run_reference(db, student)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description="curate score vs the per-turn reference loop")
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--tokenizer", choices=["qwen2.5", "small"], default="qwen2.5")
    parser.add_argument("--child", nargs=3, metavar=("PATH", "DB", "STUDENT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        db, student = build(Path(tmp), args)
        shape = store_shape(db, student)
        results = {}
        for path in ("curate", "reference"):
            out = subprocess.run([sys.executable, "-P", __file__, "--child", path, str(db), str(student)],
                                 check=True, capture_output=True, text=True).stdout
            results[path] = json.loads(out.strip().splitlines()[-1])
    gap = max(abs(results["curate"]["nll"][t] - v) for t, v in results["reference"]["nll"].items())
    print(f"store: {shape['trajectories']} trajectories, {shape['tokens']:,} tokens, "
          f"{shape['turns']:.2f} assistant turns on average; model: Qwen2 hidden {args.hidden}, "
          f"{args.layers} layers, {args.tokenizer} vocabulary; float32 on CPU")
    print(f"{'':<26}{'seconds':>9}{'tokens/s':>11}{'peak RSS MiB':>14}")
    for path, label in (("curate", "curate score"), ("reference", "per-turn reference loop")):
        r = results[path]
        print(f"{label:<26}{r['seconds']:>9.1f}{shape['tokens'] / r['seconds']:>11,.0f}{r['peak_rss_mib']:>14,.0f}")
    ratio = results["reference"]["seconds"] / results["curate"]["seconds"]
    print(f"speed-up {ratio:.1f}x (target: >= mean assistant turns, {shape['turns']:.2f}); "
          f"RSS ratio {results['reference']['peak_rss_mib'] / results['curate']['peak_rss_mib']:.1f}x; "
          f"max |trajectory NLL difference| {gap:.1e}")


if __name__ == "__main__":
    main()
