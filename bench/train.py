"""Training throughput and peak memory: `curate train` vs TRL's SFTTrainer, in one run.

    python -m bench.train                                        # CPU: small Qwen2.5-shaped model
    python -m bench.train --shape 1.5b --max-length 10240 --steps 12   # GPU (bf16)

Both trainers get the same randomly initialised Qwen2.5-shaped model (Qwen2.5 tokenizer and
vocabulary, from the built-in `tiny-qwen2.5`), the same rows (real MINT agent runs from
../shared/data, the first 4 × steps), the same LoRA config (r 64 / alpha 128 / dropout 0.05, all
linear layers), AdamW 2e-4 with cosine schedule, micro-batch 1 × 4 accumulation, gradient
checkpointing, the same max length, and the same supervised tokens: a ChatML template whose
`{% generation %}` blocks mark exactly the assistant content + `<|im_end|>\\n` that
`curate.render` supervises, so TRL's `assistant_only_loss=True` trains the same mask. curate
runs `--loss uniform` (TRL's loss). Each trainer runs in its own subprocess (fresh peak-memory
counters); tokens/s counts every input token between the end of step 1 and the end of the last
step (step 1 holds warm-up). Peak memory: torch.cuda.max_memory_allocated on a GPU, the process's
max RSS on CPU. Needs `pip install trl` (the `bench` extra).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

CHATML_GENERATION = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' + '\n' }}"
    "{% endgeneration %}{% else %}{{ message['content'] + '<|im_end|>' + '\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# (hidden, layers, intermediate, heads, kv heads) of Qwen2.5 sizes, and a small one for CPU.
SHAPES = {
    "small": (256, 2, 768, 4, 2),
    "0.5b": (896, 24, 4864, 14, 2),
    "1.5b": (1536, 28, 8960, 12, 2),
}
LORA = {"r": 64, "lora_alpha": 128, "lora_dropout": 0.05, "target_modules": "all-linear"}


def prepare(work: Path, shape: str, rows: int, join: int, tokenizer_spec: str) -> None:
    """The model folder (random weights, ChatML-with-generation template) and the data set.

    A row is `join` consecutive MINT runs chained into one conversation: MINT runs are ~2k tokens,
    agent-distillation trajectories run up to the 10,240-token limit.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from curate.models import resolve_student
    from curate.shared_data import require_shared_data

    tokenizer = AutoTokenizer.from_pretrained(resolve_student(tokenizer_spec))
    tokenizer.chat_template = CHATML_GENERATION
    hidden, layers, inter, heads, kv = SHAPES[shape]
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=hidden,
        num_hidden_layers=layers,
        intermediate_size=inter,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
    )
    if not (work / "model" / "config.json").is_file():
        torch.manual_seed(0)
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        Qwen2ForCausalLM(config).to(dtype).save_pretrained(work / "model")
        tokenizer.save_pretrained(work / "model")

    runs = []
    with gzip.open(require_shared_data() / "trajectories/mint/mint_math.jsonl.gz", "rt") as f:
        for line in f:
            history = json.loads(line)["state"]["history"]
            # user-first, assistant-last runs chain into one alternating conversation
            if sum(m["role"] == "assistant" for m in history) >= 2 and history[-1]["role"] == "assistant":
                runs.append([{"role": m["role"], "content": m["content"]} for m in history])
            if len(runs) == rows * join:
                break
    records = [{"messages": sum(runs[i : i + join], [])} for i in range(0, len(runs), join)]
    Dataset.from_list(records).save_to_disk(str(work / "data"))


def rate(points: list[tuple[float, float]]) -> float:
    """Tokens/s from (seconds, cumulative tokens) at each step end, after step 1."""
    (t0, n0), (t1, n1) = points[0], points[-1]
    return (n1 - n0) / (t1 - t0)


def peak_gb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_curate(work: Path, steps: int, max_length: int) -> dict:
    from curate.train.config import TrainConfig
    from curate.train.recipe import train

    out = work / "curate_out"
    cfg = TrainConfig(
        data=str(work / "data"),
        student=str(work / "model"),
        out=str(out),
        loss="uniform",
        profile="mint",
        max_steps=steps,
        max_length=max_length,
        lora_r=LORA["r"],
        lora_alpha=LORA["lora_alpha"],
        lora_dropout=LORA["lora_dropout"],
        save_every=steps,
    )
    train(cfg)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    cumulative = [sum(r["tokens"] for r in log[: i + 1]) for i in range(len(log))]
    points = [(r["elapsed_s"], n) for r, n in zip(log, cumulative)]
    return {"tokens_per_s": rate(points), "loss_first": log[0]["loss"], "loss_last": log[-1]["loss"]}


def run_trl(work: Path, steps: int, max_length: int) -> dict:
    import torch
    from datasets import load_from_disk
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    points: list[tuple[float, float]] = []
    losses: list[float] = []

    class Clock(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                points.append((time.perf_counter(), logs["num_tokens"]))
                losses.append(logs["loss"])

    model = AutoModelForCausalLM.from_pretrained(work / "model", dtype=torch.bfloat16 if cuda else torch.float32)
    args = SFTConfig(
        output_dir=str(work / "trl_out"),
        per_device_train_batch_size=1,
        gradient_accumulation_steps=4,
        learning_rate=2e-4,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        max_grad_norm=1.0,
        max_steps=steps,
        max_length=max_length,
        assistant_only_loss=True,
        gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        bf16=cuda,
        use_cpu=not cuda,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=load_from_disk(str(work / "data")),
        processing_class=AutoTokenizer.from_pretrained(work / "model"),
        peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA),
        callbacks=[Clock()],
    )
    trainer.train()
    return {"tokens_per_s": rate(points), "loss_first": losses[0], "loss_last": losses[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="bench_out/train", help="scratch folder (model, data, runs)")
    parser.add_argument(
        "--shape", default=None, choices=list(SHAPES), help="model shape (default: small on CPU, 1.5b on a GPU)"
    )
    parser.add_argument("--steps", type=int, default=5, help="optimiser steps per trainer (4 rows each)")
    parser.add_argument(
        "--max-length", type=int, default=None, help="tokens per row at most (default: 1024 on CPU, 10240 on a GPU)"
    )
    parser.add_argument("--join", type=int, default=1, help="MINT runs chained into one row (longer rows)")
    parser.add_argument("--tokenizer", default="tiny-qwen2.5", help="tokenizer folder or built-in student name")
    parser.add_argument("--one", choices=["curate", "trl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work)
    if args.one:
        import torch

        result = (run_curate if args.one == "curate" else run_trl)(work, args.steps, args.max_length)
        print(json.dumps({**result, "peak_gb": peak_gb(), "device": "cuda" if torch.cuda.is_available() else "cpu"}))
        return

    import torch

    cuda = torch.cuda.is_available()
    shape = args.shape or ("1.5b" if cuda else "small")
    max_length = args.max_length or (10240 if cuda else 1024)
    prepare(work, shape, 4 * args.steps, args.join, args.tokenizer)
    results = {}
    for name in ("curate", "trl"):
        shutil.rmtree(work / f"{name}_out", ignore_errors=True)  # else curate resumes the finished run
        done = subprocess.run(
            [
                sys.executable,
                "-P",
                __file__,
                "--one",
                name,
                "--work",
                str(work),
                "--steps",
                str(args.steps),
                "--max-length",
                str(max_length),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
        if done.returncode != 0:
            sys.exit(f"{name} failed:\n{done.stderr[-4000:]}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    device = torch.cuda.get_device_name() if cuda else "cpu"
    print(
        f"model {shape} (Qwen2.5 vocabulary), {4 * args.steps} rows of {args.join} MINT run(s), "
        f"max length {max_length}, {args.steps} steps, {device}"
    )
    print(f"{'trainer':<10}{'tokens/s':>12}{'peak GiB':>10}{'loss step 1':>13}{'loss last':>11}")
    for name, r in results.items():
        print(
            f"{name:<10}{r['tokens_per_s']:>12.0f}{r['peak_gb']:>10.2f}{r['loss_first']:>13.4f}{r['loss_last']:>11.4f}"
        )
    speed = results["curate"]["tokens_per_s"] / results["trl"]["tokens_per_s"]
    memory = results["trl"]["peak_gb"] / results["curate"]["peak_gb"]
    print(f"curate / TRL: {speed:.2f}x tokens/s, {memory:.2f}x less peak memory")
    summary = {"shape": shape, "max_length": max_length, "join": args.join, **results}
    (work / "bench_train.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
