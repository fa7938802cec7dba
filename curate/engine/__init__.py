"""The one place a model is loaded and made fast (`load_causal_lm`), and the engines' own setup.

`load.py` loads a causal LM for a role (score, generate, train); `model.py` says what it can do
(`Engine`);
`cpu/` holds what a float32 model on a CPU gets (oneDNN and MKL linears, flash-merge attention,
OpenMP waits); `vllm.py` the vLLM engine setup the vLLM scorer and generator share. Nothing above
this package names a kernel: the GPU path is stock transformers.
"""

from .load import DTYPES, load_causal_lm
from .model import Engine, fast_cpu, plain_head, prefix_support


def before_torch() -> None:
    """What must be settled before torch is imported, in a process that will load a model: how
    OpenMP threads wait on this machine (`cpu/threads.py`)."""
    from .cpu.threads import set_wait_policy

    set_wait_policy()


__all__ = ["DTYPES", "Engine", "before_torch", "fast_cpu", "load_causal_lm", "plain_head", "prefix_support"]
