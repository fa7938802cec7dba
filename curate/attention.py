"""Attention over two disjoint sets of keys on a CPU, as two flash passes merged by their log-sum-exp.

The scorer (a suffix against its cached prefix) and the generation backend (a batched decode step
against the prefix all rows share) both split attention this way instead of giving sdpa a
materialised mask: the public sdpa does not return the log-sum-exp, its CPU kernel does.
"""

from __future__ import annotations

import torch

flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu  # sdpa's CPU kernel: (output, log-sum-exp)


def merged(first: torch.Tensor, first_lse: torch.Tensor, second: torch.Tensor, second_lse: torch.Tensor) -> torch.Tensor:
    """Attention over both key sets, from each set's attention output [..., queries, dim] and log-sum-exp."""
    lse = torch.logaddexp(first_lse, second_lse)
    return first * (first_lse - lse).exp()[..., None] + second * (second_lse - lse).exp()[..., None]
