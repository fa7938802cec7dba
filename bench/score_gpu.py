"""GPU throughput of the scorer's forward path: a random-weight Qwen2-1.5B config in bf16 on
4k-token trajectories; tokens/s, model FLOP utilisation and peak memory, side by side with the
plain full-logits forward (`model(ids).logits` + cross-entropy) on the same batches.

Run (on a CUDA machine; needs only torch, transformers, numpy):
    python -m bench.score_gpu [--trajectories 64] [--length 4096] [--shared-prefix 1200] [--peak-tflops 989]

--shared-prefix P gives every trajectory the same first P tokens (an agent's system prompt; the
first 1200 tokens are unsupervised) and adds rows scoring them with and without prefix reuse
(`curate.score.prefix`: the prefix's key/value cache computed once); their tokens/s count every
trajectory's full length, as a user sees it.

It loads curate/score/nll.py (with curate/score/prefix.py and curate/engine/) by path rather than
importing the `curate` package, whose store needs duckdb and polars, which GPU images often lack;
they import only torch, numpy and transformers.
MFU counts forward FLOPs as 2·N·tokens (N = all parameters; scoring runs no backward, so not
6·N) against the dense bf16 peak (H100 SXM: 989 TFLOP/s); the line also gives the FLOPs the pass
really does (2·N_body·tokens + 2·H·V·supervised + causal attention).
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# curate/ and curate/score/ as bare packages: the scorer's modules without the packages' __init__ (the store)
for _name, _folder in (("curate_lite", "curate"), ("curate_lite.score", "curate/score")):
    sys.modules[_name] = types.ModuleType(_name)
    sys.modules[_name].__path__ = [str(ROOT / _folder)]
nll = importlib.import_module("curate_lite.score.nll")

QWEN2_1_5B = dict(
    hidden_size=1536,
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    intermediate_size=8960,
    vocab_size=151936,
    max_position_embeddings=32768,
    rope_theta=1e6,
    tie_word_embeddings=True,
)


def agent_mask(length: int, rng: random.Random) -> list[int]:
    """Turn labels shaped like an agent log: a long system prompt + task, then assistant turns
    (supervised) alternating with observations."""
    turn = [-1] * min(length, 1200)
    m = 0
    while len(turn) < length:
        turn += [m] * rng.randint(120, 400)
        turn += [-1] * rng.randint(80, 700)
        m += 1
    return turn[:length]


def timed(fn, batches, warm: int = 1) -> tuple[float, float]:
    """Seconds for one pass over all batches (after `warm` warm-up batches) and peak GPU memory in GiB
    (0 without CUDA: `bench.gpu_check --smoke` runs this on a CPU)."""
    cuda = torch.cuda.is_available()
    for batch in batches[:warm]:
        fn(batch)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for batch in batches:
        fn(batch)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0


def full_logits(model, batch) -> torch.Tensor:
    """The plain forward a scorer is measured against: every position's logits, then cross-entropy."""
    with torch.inference_mode():
        x = torch.tensor([ids for ids, _ in batch], device=model.device)
        logits = model(x, use_cache=False).logits[:, :-1].float()
        return torch.nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=64)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--shared-prefix", type=int, default=1200, help="tokens every trajectory shares (0: none)")
    parser.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(**QWEN2_1_5B)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16).eval()
    engine = nll.Engine(model)  # bfloat16 on a GPU: the stock model, as curate.engine loads it
    n_params = sum(p.numel() for p in model.parameters())
    n_embed = config.vocab_size * config.hidden_size
    rng = random.Random(0)
    seqs = [
        ([rng.randrange(config.vocab_size) for _ in range(args.length)], agent_mask(args.length, rng))
        for _ in range(args.trajectories)
    ]
    tokens = args.trajectories * args.length
    supervised = sum(sum(1 for t in turn[1:] if t >= 0) for _, turn in seqs)
    h, L, T = config.hidden_size, config.num_hidden_layers, args.length
    real_flops = (
        2 * (n_params - n_embed) * tokens
        + 2 * h * config.vocab_size * supervised
        + args.trajectories * L * 2 * T * T * h
    )  # QK^T and AV, causal half of 4·T²·h
    print(
        f"Qwen2 {n_params / 1e9:.2f}B params (random, bf16), {args.trajectories} trajectories × {T} tokens, "
        f"{supervised / tokens:.0%} supervised; {torch.cuda.get_device_name()}"
    )

    (ours,) = nll.supervised_nll(engine, [seqs[0]])
    with torch.inference_mode():
        x = torch.tensor([seqs[0][0]], device="cuda")
        full = torch.nn.functional.cross_entropy(
            model(x, use_cache=False).logits[0, :-1].float(), x[0, 1:], reduction="none"
        )
    keep = torch.tensor([t >= 0 for t in seqs[0][1][1:]], device="cuda")
    gap = float((full[keep].double().cpu() - torch.from_numpy(ours)).abs().max())
    print(f"chunked NLL vs full-logits cross-entropy on one trajectory: max |Δ| = {gap:.2e} nats (bf16)")

    results = []
    for batch_tokens in (8192, 16384, 32768):
        for chunk_mib in (128, 1024):
            groups = [[seqs[i] for i in b] for b in nll.plan_batches([len(s[0]) for s in seqs], batch_tokens)]
            seconds, peak = timed(lambda b, mib=chunk_mib: nll.supervised_nll(engine, b, mib * 2**20), groups)
            results.append(
                {
                    "path": "curate (chunked head)",
                    "batch_tokens": batch_tokens,
                    "chunk_mib": chunk_mib,
                    "tokens_per_s": tokens / seconds,
                    "peak_gib": peak,
                    "seconds": seconds,
                }
            )

    for batch_tokens in (8192, 16384):
        groups = [[seqs[i] for i in b] for b in nll.plan_batches([len(s[0]) for s in seqs], batch_tokens)]
        seconds, peak = timed(lambda b: full_logits(model, b), groups)
        results.append(
            {
                "path": "full logits",
                "batch_tokens": batch_tokens,
                "chunk_mib": None,
                "tokens_per_s": tokens / seconds,
                "peak_gib": peak,
                "seconds": seconds,
            }
        )

    # Mixed lengths: padded rows with a mask vs one packed row (sdpa gets a block-diagonal mask).
    mixed = [(ids[:n], turn[:n]) for (ids, turn), n in zip(seqs, [rng.randint(T // 2, T) for _ in seqs])]
    mixed_tokens = sum(len(ids) for ids, _ in mixed)
    for pack in (False, True):
        groups = [[mixed[i] for i in b] for b in nll.plan_batches([len(s[0]) for s in mixed], 16384, pack)]
        seconds, peak = timed(lambda b, pack=pack: nll.supervised_nll(engine, b, 2**30, pack), groups)
        results.append(
            {
                "path": f"curate, mixed lengths, {'packed' if pack else 'padded'}",
                "batch_tokens": 16384,
                "chunk_mib": 1024,
                "tokens_per_s": mixed_tokens / seconds,
                "peak_gib": peak,
                "seconds": seconds,
            }
        )

    if args.shared_prefix:
        system = seqs[0][0][: args.shared_prefix]
        shared = [(system + ids[args.shared_prefix :], turn) for ids, turn in seqs]
        whole = None
        for reuse in (False, True):
            start = time.perf_counter()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            got = nll.score_sequences(engine, shared, 16384, 2**30, prefix_reuse=reuse)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            whole = whole if reuse else got
            gap = max(float(abs(a - b).max()) for a, b in zip(got, whole))
            results.append(
                {
                    "path": f"curate, shared {args.shared_prefix}, reuse {'on' if reuse else 'off'}",
                    "batch_tokens": 16384,
                    "chunk_mib": 1024,
                    "tokens_per_s": tokens / seconds,
                    "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
                    "seconds": seconds,
                    "nll_gap_vs_off": gap,
                }
            )

    # torch.compile fuses the body's elementwise work (norms, rotary, SiLU); shapes vary with the
    # batch, so the warm-up covers every batch shape once.
    model.get_decoder().compile()
    (compiled,) = nll.supervised_nll(engine, [seqs[0]])
    print(f"compiled vs eager NLL on one trajectory: max |Δ| = {abs(compiled - ours).max():.2e} nats")
    for label, data, n_tok in (("equal lengths", seqs, tokens), ("mixed lengths, padded", mixed, mixed_tokens)):
        groups = [[data[i] for i in b] for b in nll.plan_batches([len(s[0]) for s in data], 16384)]
        start = time.perf_counter()
        seconds, peak = timed(lambda b: nll.supervised_nll(engine, b, 2**30), groups, warm=len(groups))
        results.append(
            {
                "path": f"curate + compile, {label}",
                "batch_tokens": 16384,
                "chunk_mib": 1024,
                "tokens_per_s": n_tok / seconds,
                "peak_gib": peak,
                "seconds": seconds,
                "warmup_s": time.perf_counter() - start - seconds,
            }
        )

    print(f"{'path':<40}{'batch':>7}{'chunk':>7}{'tokens/s':>11}{'MFU 2N':>8}{'MFU real':>9}{'peak GiB':>9}")
    for r in results:
        n_tok = mixed_tokens if "mixed" in r["path"] else tokens
        r["mfu_2n"] = 2 * n_params * r["tokens_per_s"] / (args.peak_tflops * 1e12)
        # with prefix reuse the pass skips work: MFU over the work it does is not comparable
        r["mfu_real"] = (
            real_flops / r["seconds"] / (args.peak_tflops * 1e12)
            if n_tok == tokens and "shared" not in r["path"]
            else None
        )
        real = f"{r['mfu_real']:.1%}" if r["mfu_real"] is not None else "-"
        print(
            f"{r['path']:<40}{r['batch_tokens']:>7}{r['chunk_mib'] or '-':>7}{r['tokens_per_s']:>11,.0f}"
            f"{r['mfu_2n']:>8.1%}{real:>9}{r['peak_gib']:>9.1f}"
        )
    for r in results:
        if "warmup_s" in r:
            print(f"{r['path']}: compile warm-up {r['warmup_s']:.0f} s")
        if "nll_gap_vs_off" in r:
            print(f"{r['path']}: max |NLL - reuse off| = {r['nll_gap_vs_off']:.2e} nats (bf16)")
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {"params": n_params, "supervised_share": supervised / tokens, "nll_gap": gap, "results": results},
                indent=2,
            )
        )


if __name__ == "__main__":
    sys.exit(main())
