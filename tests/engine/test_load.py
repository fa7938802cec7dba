"""`curate.engine.load_causal_lm`: the one place a model is loaded. On a GPU or in bfloat16 the
model is stock transformers by construction; a float32 model on a CPU gets this machine's kernels,
and says so through what the Engine reports, never through a kernel's name above the engine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from curate.engine import load_causal_lm

CURATE = Path(__file__).resolve().parents[2] / "curate"
# Names of this machine's kernels; only curate/engine/ may say them.
KERNELS = re.compile(
    r"OneDNN|onednn|mkldnn|_mkl_|PackedLinear|Packs\b|flash_attention_for_cpu|\bflash\(|"
    r"merged\(|scoring_attention|shared_prefix_attention|wait_policy|GOMP_|OMP_WAIT"
)


def stock(engine) -> bool:
    """Plain transformers: every linear layer nn.Linear, sdpa attention, nothing of the engine's."""
    model = engine.model
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return (
        all(type(m) is nn.Linear for m in model.modules() if "Linear" in type(m).__name__)
        and bool(linears)
        and model.config._attn_implementation == "sdpa"
        and not engine.reads_prefix
        and engine.fresh_head_rows is None
        and engine.packs is None
        and engine.head is None
    )


@pytest.mark.parametrize("role", ["score", "generate", "train"])
def test_a_bfloat16_model_is_stock_transformers(tiny_model_dir, role) -> None:
    engine = load_causal_lm(tiny_model_dir, "cpu", "bfloat16", role)
    assert stock(engine) and engine.model.dtype == torch.bfloat16


def test_a_float32_model_on_a_cpu_gets_the_cpu_kernels_for_its_role(tiny_model_dir) -> None:
    scoring = load_causal_lm(tiny_model_dir, "cpu", "float32", "score")
    layers = scoring.model.config.num_hidden_layers
    assert scoring.reads_prefix and scoring.fresh_head_rows is not None
    assert not [m for m in scoring.model.modules() if type(m) is nn.Linear]
    assert sum("OneDNN" in type(m).__name__ for m in scoring.model.modules()) == 7 * layers + 1
    generating = load_causal_lm(tiny_model_dir, "cpu", "float32", "generate")
    assert generating.reads_prefix and generating.plain and generating.packs is not None
    assert generating.model.config._attn_implementation != "sdpa"
    # training needs autograd through plain layers; and any role can ask for the stock model
    assert stock(load_causal_lm(tiny_model_dir, "cpu", "float32", "train"))
    assert stock(load_causal_lm(tiny_model_dir, "cpu", "float32", "score", fast=False))


def test_the_engine_refuses_what_it_cannot_load(tiny_model_dir) -> None:
    with pytest.raises(ValueError, match="unknown role 'serve'"):
        load_causal_lm(tiny_model_dir, "cpu", "float32", "serve")
    with pytest.raises(ValueError, match="--dtype 'int8': expected one of float32, bfloat16, float16"):
        load_causal_lm(tiny_model_dir, "cpu", "int8", "score")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="--device cuda: no CUDA device is visible to torch"):
            load_causal_lm(tiny_model_dir, "cuda", "bfloat16", "score")


def test_no_kernel_is_named_outside_the_engine() -> None:
    named = [
        f"{path.relative_to(CURATE)}: {match.group()}"
        for path in sorted(CURATE.rglob("*.py"))
        if "engine" not in path.relative_to(CURATE).parts
        for match in KERNELS.finditer(path.read_text())
    ]
    assert named == []
