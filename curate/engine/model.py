"""What a loaded model can do (`Engine`) and the checks that decide it: the leaf both `load.py`
and `cpu/` build on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Head = Callable[[Any, Any], Any]  # (hidden [rows, dim], out buffer or None) -> logits [rows, vocab]


@dataclass
class Engine:
    """A loaded causal LM and what its setup lets callers ask of it."""

    model: Any
    # The attention reads a cached prefix in place (`prefix=` per layer) and packed sequences
    # (`segments=`) when scoring, or the prefix all rows of a decode step share (`shared=`) when
    # generating; stock attention takes neither.
    reads_prefix: bool = False
    # The output embedding writes every product afresh and cannot fill a given buffer: at most
    # this many rows per product keep each output in reused heap memory (None: no such bound).
    fresh_head_rows: int | None = None
    packs: Any = None  # generation on a CPU: weights packed for a decode step's rows (`fit` before a step)
    head: Head | None = None  # the logits of final hidden states (None: the model's own output embedding)
    # Generation: the logits are the output embedding of the final hidden states (`plain_head`) and
    # the attention takes a padding mask, so rows of different lengths prefill in one forward.
    plain: bool = False

    @property
    def device(self) -> Any:
        return self.model.device

    def logits(self, hidden: Any, out: Any = None) -> Any:
        """Logits [rows, vocab] of final hidden states [rows, dim], in the head's dtype; into `out`
        (a [rows, vocab] buffer) where the head can write there."""
        if self.head is not None:
            return self.head(hidden, out)
        head = self.model.get_output_embeddings()
        if out is None or self.fresh_head_rows is not None:
            return head(hidden)
        logits = _mm(hidden, head.weight.T, out)
        return logits if head.bias is None else logits.add_(head.bias)

    def fit(self, rows: int) -> None:
        """Prepare the products of a decode step of `rows` rows."""
        if self.packs is not None:
            self.packs.fit(rows)


def _mm(a: Any, b: Any, out: Any) -> Any:
    import torch

    return torch.mm(a, b, out=out[: len(a)])


def fast_cpu(model: Any) -> bool:
    """Whether `model` gets this machine's CPU kernels: float32 on a CPU."""
    import torch

    weight = next(model.parameters())
    return weight.device.type == "cpu" and weight.dtype == torch.float32


def prefix_support(config: Any) -> str | None:
    """Why a model's key/value cache cannot serve as a prefix that other tokens continue, or None
    when it can: sliding-window layers keep only part of the cache and mask differently."""
    layer_types = getattr(config, "layer_types", None) or []
    if any(t != "full_attention" for t in layer_types) or getattr(config, "use_sliding_window", False):
        return "the model has sliding-window attention layers"
    if getattr(config, "sliding_window", None) is not None and not hasattr(config, "use_sliding_window"):
        return "the model has sliding-window attention layers"
    return None


def plain_head(model: Any) -> bool:
    """Whether the logits are the output embedding of the final hidden states and nothing more
    (no bias, no soft-capping), over full-attention layers only."""
    config, head = model.config, model.get_output_embeddings()
    return (
        head.bias is None
        and getattr(config, "final_logit_softcapping", None) is None
        and set(getattr(config, "layer_types", None) or ["full_attention"]) == {"full_attention"}
    )
