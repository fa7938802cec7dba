"""A model's linear layers swapped for faster products on a CPU.

Scoring multiplies hundreds to thousands of token rows by every weight matrix of the student.
torch sends float32 products to MKL's sgemm, which packs the weight again on every call (MKL's
own packed weights serve one row count only). oneDNN with the weight packed once for any row count
(`mkldnn::_reorder_linear_weight`, then `_linear_pointwise`) ran SmolLM2's body products
1.40-1.50x faster on this project's 2-core AMD EPYC, for 64 to 8,192 rows, and its 49k-row output
embedding 1.39x faster in 128-row chunks (`python -m bench.linears`). The products are float32
either way, summed in another order: NLLs agree with a float64 model as closely as MKL's do.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# oneDNN writes every product into a fresh tensor. One within glibc's largest mmap threshold
# (32 MiB) is served again from the heap once the first is freed; a larger one is mapped anew
# each time, and its page faults made SmolLM2's output embedding 1.27x slower in 256-row chunks.
FRESH_BYTES = 24 * 2**20


def swap(body: nn.Module, wrap: Callable[[nn.Linear], nn.Module]) -> list[nn.Module]:
    """Replace every `nn.Linear` under `body` with `wrap(linear)`; return the replacements."""
    targets = [(parent, name, child) for parent in body.modules()
               for name, child in parent.named_children() if type(child) is nn.Linear]
    for parent, name, child in targets:
        setattr(parent, name, wrap(child))
    return [getattr(parent, name) for parent, name, _ in targets]


class OneDNNLinear(nn.Module):
    """`linear` through its weight packed once for oneDNN (float32, CPU); the plain weight is let go."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach())
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def fresh_rows(self) -> int:
        """Rows per product whose output stays within FRESH_BYTES."""
        return max(1, FRESH_BYTES // (4 * self.out_features))


def onednn_pays(model: nn.Module) -> bool:
    """Whether `model` runs where oneDNN's packed products pay: float32 on a CPU with oneDNN."""
    weight = next(model.parameters())
    return weight.device.type == "cpu" and weight.dtype == torch.float32 and torch.backends.mkldnn.is_available()


def to_onednn(model: nn.Module) -> None:
    """Run every linear layer of a causal LM's body, and its output embedding, through oneDNN.

    A tied output embedding gets a packed copy of its own (the input embedding stays as it is):
    one more vocabulary x hidden matrix in memory. The tensors left (the input embedding, norms)
    are copied out of the weights file transformers maps: the mapping then closes, and the file's
    pages that packing read no longer count in memory beside the packed copies."""
    swap(model.get_decoder(), OneDNNLinear)
    model.set_output_embeddings(OneDNNLinear(model.get_output_embeddings()))
    for tensor in (*model.parameters(), *model.buffers()):
        tensor.data = tensor.data.clone()
