"""The GPU path: scoring, generation, training and evaluation on CUDA with the stock model
(`curate.engine` keeps kernels of its own for CPUs). Skipped without a CUDA device;
`python -m bench.gpu_check` runs these with a speed row of each."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytestmark = pytest.mark.gpu


def test_scoring_on_a_gpu_is_stock_and_equals_the_cpu_numbers(tiny_model_dir) -> None:
    from curate.score.nll import TransformersBackend

    cpu = TransformersBackend(str(tiny_model_dir))
    gpu = TransformersBackend(str(tiny_model_dir), device="cuda")
    assert all(type(m) is nn.Linear for m in gpu.model.modules() if "Linear" in type(m).__name__)
    assert gpu.model.config._attn_implementation == "sdpa" and not gpu.engine.reads_prefix
    rng = np.random.default_rng(0)
    vocab = gpu.model.config.vocab_size
    seqs = [(rng.integers(vocab, size=n).tolist(), [-1] * 8 + [0] * (n - 8)) for n in (40, 300, 129)]
    for a, b in zip(cpu.nll(seqs), gpu.nll(seqs)):
        assert np.abs(a - b).max() < 1e-3
    gpu.check(seqs[1][0])


def test_generation_on_a_gpu_gives_each_request_its_seeded_text(tiny_model_dir) -> None:
    from curate.agent.backends import GenRequest, make_backend

    backend = make_backend("transformers", str(tiny_model_dir), device="cuda", dtype="float32")
    assert backend.model.config._attn_implementation == "sdpa" and backend.engine.packs is None
    chat = ({"role": "user", "content": "Count to three."},)
    requests = [GenRequest(chat, max_new_tokens=12, seed=s) for s in (1, 2, 1)]
    batch = backend.generate(requests)
    assert batch[0] == batch[2] and [backend.generate([r])[0] for r in requests] == batch


def test_a_training_step_on_a_gpu_lowers_the_loss(tiny_model_dir, tmp_path) -> None:
    from curate.engine import load_causal_lm

    engine = load_causal_lm(tiny_model_dir, "cuda", "bfloat16", "train")
    model = engine.model.train()
    ids = torch.randint(0, model.config.vocab_size, (2, 64), device="cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_eval_on_a_gpu_scores_pass_at_1(tiny_model_dir, tmp_path) -> None:
    import json

    from curate.eval.evaluate import EvalConfig, evaluate

    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "q1", "question": "What is 2 plus 3?", "answer": "5"}) + "\n")
    result = evaluate(
        tmp_path / "eval.duckdb",
        EvalConfig(
            model=str(tiny_model_dir),
            benchmarks=str(questions),
            tools=("python",),
            max_steps=1,
            max_new_tokens=16,
            device="cuda",
            dtype="bfloat16",
        ),
        progress=False,
    )
    [bench] = result.benchmarks
    assert bench.n == 1 and 0 <= bench.correct <= 1 and len(bench.predictions) == 1


def test_the_recipe_trains_a_lora_adapter_on_a_gpu_in_bf16(tiny_model_dir, tmp_path) -> None:
    import json

    from train_rows import export_rows, write_export

    from curate.train.config import TrainConfig
    from curate.train.recipe import train

    data = write_export(tmp_path / "data", export_rows(4))
    out = tmp_path / "run"
    # Every step trains on all four rows, without dropout, so the losses of two steps compare the same
    # tokens (on a CPU in float32 they go 6.42, 6.22, 6.14, 6.09).
    cfg = TrainConfig(
        data=str(data),
        student=str(tiny_model_dir),
        out=str(out),
        lr=3e-3,
        lora_dropout=0.0,
        max_steps=4,
        batch_size=4,
        save_every=4,
    )
    log = train(cfg).log
    resolved = json.loads((out / "train_config.json").read_text())["resolved"]
    assert (resolved["device"], resolved["precision"]) == ("cuda", "bf16")
    assert log[-1]["loss"] < log[0]["loss"] and (out / "adapter_model.safetensors").is_file()
