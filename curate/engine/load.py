"""`load_causal_lm`: the one place a model is loaded and made fast, and what it then can do.

On a GPU, or in bfloat16 or float16, the model is stock transformers (`nn.Linear`, sdpa) by
construction. A float32 model on a CPU (`fast_cpu`) gets this machine's kernels (`engine/cpu/`):
for scoring, linear layers through oneDNN and an attention that reads a cached prefix in place and
packs sequences into one row; for generation, weights packed for a decode step's rows (MKL) and an
attention that reads the prefix all rows share once. Training always gets the stock model: the
packed kernels are for inference only. Callers ask the `Engine` what the model can do and never
name a kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .model import Engine, fast_cpu, plain_head

if TYPE_CHECKING:
    import torch

ROLES = ("score", "generate", "train")
DTYPES = ("float32", "bfloat16", "float16")


def load_causal_lm(
    path: Any, device: str | torch.device, dtype: str, role: str, adapter: str | None = None, fast: bool = True
) -> Engine:
    """A causal LM from a local folder, on `device` in `dtype`, set up for `role` (score, generate,
    train); `adapter`: a PEFT LoRA folder merged into the weights; `fast=False`: the stock model
    even where CPU kernels would apply."""
    import torch
    from transformers import AutoModelForCausalLM

    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    if dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is visible to torch")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model.to(device)
    if role == "train":
        return Engine(model)
    model.eval()
    if fast and fast_cpu(model):
        from . import cpu

        return cpu.scoring_engine(model) if role == "score" else cpu.generation_engine(model)
    plain = role == "generate" and plain_head(model) and model.config._attn_implementation == "sdpa"
    return Engine(model, plain=plain)
