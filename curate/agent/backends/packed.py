"""Linear layers whose weights are packed for MKL, for the few rows of a batched decode step on a CPU.

A batched decode step multiplies a few rows by every weight matrix. MKL's general sgemm handles
such skinny products poorly: SmolLM2's 210 body matrices took 67 ms for 8 rows against 25 ms for
one. Packed once for 8 rows (`cblas_sgemm_pack`, reached through torch's own `mkl::_mkl_linear`),
the same product took 42 ms, and the 49k-row output embedding 8.7 ms instead of 15 ms: the weight
streams through at the memory's speed. A pack serves exactly its number of rows, so fewer rows are
padded to it (a row's result does not depend on the other rows). `Packs.fit` packs for a batch's
rows rounded up to a power of two, again larger for a larger batch; fewer than 3 rows (where the
plain product is faster) and more than the pack's (a prefill) use the plain weight. It costs one
more copy of the weights in memory; float32 on a CPU only, where MKL serves torch's products.
"""

from __future__ import annotations

import torch
from torch import nn

from ...linears import swap

FEWEST = 3  # rows from which a packed weight is faster than the plain product (measured here)
MOST = 64  # the largest pack (SmolLM2 body at 64 rows: 66 ms packed, 87 ms plain; 32 rows: 44 vs 101)


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

    @staticmethod
    def pay(model: nn.Module) -> bool:
        """Whether `model` runs where packed weights pay: float32 on a CPU with MKL."""
        weight = next(model.parameters())
        return weight.device.type == "cpu" and weight.dtype == torch.float32 and torch.backends.mkl.is_available()
