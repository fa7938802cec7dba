"""Attention over two disjoint sets of keys on a CPU, as two flash passes merged by their log-sum-exp.

The scorer (a suffix against its cached prefix) and the generation backend (a batched decode step
against the prefix all rows share) both split attention this way instead of giving sdpa a
materialised mask: the public sdpa does not return the log-sum-exp, its CPU kernel does.
"""

from __future__ import annotations

import torch

flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu  # sdpa's CPU kernel: (output, log-sum-exp)


def merged(first: torch.Tensor, first_lse: torch.Tensor, second: torch.Tensor, second_lse: torch.Tensor) -> torch.Tensor:
    """Attention over both key sets, in float32, from each set's attention output [..., queries, dim]
    and log-sum-exp. A float32 `first` is overwritten with it (both outputs are a caller's temporaries:
    no new buffer as large as they are, which costs page faults and half the time on a CPU)."""
    lse = torch.logaddexp(first_lse, second_lse)
    weights = (first_lse - lse).exp_()[..., None], (second_lse - lse).exp_()[..., None]
    return first.float().mul_(weights[0]).addcmul_(second, weights[1])
