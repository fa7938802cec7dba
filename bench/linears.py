"""The student's linear products on a CPU: torch's default (MKL sgemm) vs oneDNN with the weight
packed once (`curate.engine.cpu.linears`, what `curate score` runs on a CPU), side by side in one process.

For each row count: every product of one decoder layer (q, k, v, o, gate, up, down), GFLOP/s of
each path and their ratio. Then the output embedding as `curate.score.nll.head_nll` applies it: MKL into
a kept buffer, 128 MiB of logits per chunk, against oneDNN in chunks within `FRESH_BYTES`. Weights
are random with the student's shapes (the speed of a product does not depend on its values); the
largest |difference| from a float64 product is printed for each path.

Run: python -m bench.linears [--student smollm2] [--rows 64,512,2048,8192] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from curate.engine.cpu.threads import described, set_wait_policy


def rate(run: Callable[[], object], flops: float, repeats: int) -> float:
    """GFLOP/s of `run` (one untimed call first)."""
    run()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return flops * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default="smollm2")
    parser.add_argument("--rows", default="64,512,2048,8192", help="token rows per product, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    set_wait_policy()
    import torch
    from torch import nn
    from transformers import AutoConfig

    from curate.engine.cpu.linears import OneDNNLinear
    from curate.models import resolve_student
    from curate.score.nll import DEFAULT_CHUNK_BYTES, chunk_positions

    config = AutoConfig.from_pretrained(resolve_student(args.student))
    hidden, inner, vocab = config.hidden_size, config.intermediate_size, config.vocab_size
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    kv = config.num_key_value_heads * head_dim
    torch.manual_seed(0)
    shapes = [
        (hidden, config.num_attention_heads * head_dim),
        (hidden, kv),
        (hidden, kv),
        (config.num_attention_heads * head_dim, hidden),
        (hidden, inner),
        (hidden, inner),
        (inner, hidden),
    ]
    plain = [nn.Linear(i, o, bias=False).eval() for i, o in shapes]
    packed = [OneDNNLinear(layer) for layer in plain]
    print(
        f"{args.student}: hidden {hidden}, intermediate {inner}, vocabulary {vocab}; float32, "
        f"{torch.get_num_threads()} threads; {described()}"
    )
    print(f"{'rows':>6} {'MKL GFLOP/s':>12} {'oneDNN GFLOP/s':>15} {'ratio':>6} {'MKL |d|':>8} {'oneDNN |d|':>10}")
    with torch.inference_mode():
        for rows in (int(r) for r in args.rows.split(",")):
            xs = [torch.randn(1, rows, i) for i, _ in shapes]
            flops = sum(2 * rows * i * o for i, o in shapes)
            mkl = rate(lambda xs=xs: [f(x) for f, x in zip(plain, xs)], flops, args.repeats)
            dnn = rate(lambda xs=xs: [f(x) for f, x in zip(packed, xs)], flops, args.repeats)
            gaps = [
                max(
                    float((f(x).double() - x.double() @ p.weight.double().T).abs().max())
                    for f, x, p in zip(layers, xs, plain)
                )
                for layers in (plain, packed)
            ]
            print(f"{rows:>6} {mkl:>12.1f} {dnn:>15.1f} {dnn / mkl:>5.2f}x {gaps[0]:>8.1e} {gaps[1]:>10.1e}")

        head = nn.Linear(hidden, vocab, bias=False).eval()
        fast = OneDNNLinear(head)
        states = torch.randn(2048, hidden)
        chunk = chunk_positions(vocab, DEFAULT_CHUNK_BYTES)
        kept = torch.empty(chunk, vocab)

        def through_mkl() -> None:
            for i in range(0, len(states), chunk):
                torch.mm(states[i : i + chunk], head.weight.T, out=kept[: len(states[i : i + chunk])])

        def through_onednn() -> None:
            for i in range(0, len(states), fast.fresh_rows()):
                fast(states[i : i + fast.fresh_rows()])

        flops = 2 * len(states) * hidden * vocab
        mkl, dnn = rate(through_mkl, flops, args.repeats), rate(through_onednn, flops, args.repeats)
    print(
        f"output embedding, {len(states)} rows: MKL into a kept buffer ({chunk} rows per chunk) {mkl:.1f} GFLOP/s, "
        f"oneDNN ({fast.fresh_rows()} rows per chunk) {dnn:.1f} GFLOP/s: {dnn / mkl:.2f}x"
    )


if __name__ == "__main__":
    main()
