"""A model's linear layers swapped for faster float32 products on a CPU: oneDNN for scoring, MKL
packs for the few rows of a decode step.

Scoring multiplies hundreds to thousands of token rows by every weight matrix of the student.
torch sends float32 products to MKL's sgemm, which packs the weight again on every call (MKL's own
packed weights serve one row count only). oneDNN with the weight packed once for any row count
(`mkldnn::_reorder_linear_weight`, then `_linear_pointwise`) ran SmolLM2's body products
1.40-1.50x faster on this project's 2-core AMD EPYC, for 64 to 8,192 rows, and its 49k-row output
embedding 1.39x faster in 128-row chunks (`python -m bench.linears`). The products are float32
either way, summed in another order: NLLs agree with a float64 model as closely as MKL's do.

A batched decode step multiplies a few rows by every weight matrix, which MKL's general sgemm
handles poorly: SmolLM2's 210 body matrices took 67 ms for 8 rows against 25 ms for one. Packed
once for 8 rows (`cblas_sgemm_pack`, reached through torch's own `mkl::_mkl_linear`), the same
product took 42 ms, and the 49k-row output embedding 8.7 ms instead of 15 ms: the weight streams
through at the memory's speed. A pack serves exactly its number of rows, so fewer rows are padded
to it (a row's result does not depend on the other rows). `Packs.fit` packs for a batch's rows
rounded up to a power of two, again larger for a larger batch; fewer than 3 rows (where the plain
product is faster) and more than the pack's (a prefill) use the plain weight. It costs one more
copy of the weights in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# oneDNN writes every product into a fresh tensor. One within glibc's largest mmap threshold
# (32 MiB) is served again from the heap once the first is freed; a larger one is mapped anew
# each time, and its page faults made SmolLM2's output embedding 1.27x slower in 256-row chunks.
FRESH_BYTES = 24 * 2**20
FEWEST = 3  # rows from which a packed weight is faster than the plain product (measured here)
MOST = 64  # the largest pack (SmolLM2 body at 64 rows: 66 ms packed, 87 ms plain; 32 rows: 44 vs 101)

Wrapped = TypeVar("Wrapped", bound=nn.Module)


def swap(body: nn.Module, wrap: Callable[[nn.Linear], Wrapped]) -> list[Wrapped]:
    """Replace every `nn.Linear` under `body` with `wrap(linear)`; return the replacements."""
    targets = [
        (parent, name, child)
        for parent in body.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Linear
    ]
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


def to_onednn(model: PreTrainedModel) -> None:
    """Run every linear layer of a causal LM's body, and its output embedding, through oneDNN.

    A tied output embedding gets a packed copy of its own (the input embedding stays as it is):
    one more vocabulary x hidden matrix in memory. The tensors left (the input embedding, norms)
    are copied out of the weights file transformers maps: the mapping then closes, and the file's
    pages that packing read no longer count in memory beside the packed copies."""
    swap(model.get_decoder(), OneDNNLinear)
    model.set_output_embeddings(OneDNNLinear(model.get_output_embeddings()))
    for tensor in (*model.parameters(), *model.buffers()):
        tensor.data = tensor.data.clone()


class PackedLinear(nn.Module):
    """`linear`, through its weight packed for `rows` rows when a product has from FEWEST to that many."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear, self.rows, self.packed = linear, 0, None

    def pack(self, rows: int) -> None:
        self.rows, self.packed = rows, torch.ops.mkl._mkl_reorder_linear_weight(self.linear.weight.detach(), rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        n = flat.shape[0]
        if not FEWEST <= n <= self.rows:
            return self.linear(x)
        if n < self.rows:
            flat = torch.cat([flat, flat.new_zeros(self.rows - n, flat.shape[1])])
        out = torch.ops.mkl._mkl_linear(flat, self.packed, self.linear.weight, self.linear.bias, self.rows)
        return out[:n].view(*x.shape[:-1], out.shape[-1])


class Packs:
    """The linear layers of a model (every `nn.Linear` under `body`, and `head`), packed for one batch size.

    The layers become PackedLinear at the first batch that packs: until then (one run at a time) the
    model runs untouched, without a wrapper's cost on every product.
    """

    def __init__(self, body: nn.Module, head: nn.Linear) -> None:
        self.body, self.head = body, PackedLinear(head)
        self.layers: list[PackedLinear] = []

    @property
    def rows(self) -> int:
        return self.head.rows

    def fit(self, rows: int) -> None:
        """Pack for `rows` rows (rounded up to a power of two) unless a pack as large is there or it cannot pay."""
        if not FEWEST <= rows <= MOST or rows <= self.rows:
            return
        if not self.layers:
            self.layers = [self.head, *swap(self.body, PackedLinear)]
        size = 1 << (rows - 1).bit_length()
        for layer in self.layers:
            layer.pack(size)
