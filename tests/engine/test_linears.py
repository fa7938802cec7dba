"""Linear layers on oneDNN (`curate.engine.cpu.linears`): the scorer's products on a CPU give the plain
layers' numbers, and only a float32 model on a CPU gets them."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from curate.engine import Engine
from curate.engine.cpu.linears import OneDNNLinear
from curate.score.nll import TransformersBackend, head_chunk, supervised_nll


def test_onednn_linear_gives_the_plain_product() -> None:
    torch.manual_seed(0)
    for bias in (True, False):
        plain = nn.Linear(96, 1000, bias=bias).eval()
        packed = OneDNNLinear(plain)
        for x in (torch.randn(37, 96), torch.randn(2, 300, 96)):
            with torch.inference_mode():
                exact = x.double() @ plain.weight.double().T + (plain.bias.double() if bias else 0)
                ours = packed(x)
            assert ours.shape == exact.shape and ours.dtype == torch.float32
            assert float((ours.double() - exact).abs().max()) < 1e-5
    assert packed.fresh_rows() == 24 * 2**20 // (4 * 1000) == 6291


def test_backend_runs_every_linear_through_onednn_and_scores_as_the_plain_model(tiny_model_dir, tiny_model) -> None:
    engine = TransformersBackend(str(tiny_model_dir)).engine
    model = engine.model
    layers = model.config.num_hidden_layers
    assert not [m for m in model.modules() if type(m) is nn.Linear]
    assert sum(isinstance(m, OneDNNLinear) for m in model.modules()) == 7 * layers + 1  # q k v o gate up down, head
    vocab = model.config.vocab_size
    assert (
        head_chunk(engine) == 24 * 2**20 // (4 * vocab) < head_chunk(Engine(tiny_model)) == 128 * 2**20 // (4 * vocab)
    )
    # the tied input embedding is still the plain model's
    assert torch.equal(model.get_input_embeddings().weight, tiny_model.get_input_embeddings().weight)
    rng = random.Random(1)
    seqs = [
        ([rng.randrange(vocab) for _ in range(n)], [-1] * 5 + [rng.choice([-1, 0, 1]) for _ in range(n - 5)])
        for n in (40, 300, 129)
    ]
    ours = TransformersBackend(str(tiny_model_dir)).nll(seqs)
    plain = [supervised_nll(Engine(tiny_model), [s])[0] for s in seqs]
    assert [len(x) for x in ours] == [len(x) for x in plain] == [sum(t >= 0 for t in turn[1:]) for _, turn in seqs]
    assert max(float(np.abs(a - b).max()) for a, b in zip(ours, plain)) < 1e-5


def test_bfloat16_keeps_the_plain_layers(tiny_model_dir) -> None:
    model = TransformersBackend(str(tiny_model_dir), dtype="bfloat16").model
    assert not [m for m in model.modules() if isinstance(m, OneDNNLinear)]
    assert type(model.get_output_embeddings()) is nn.Linear
