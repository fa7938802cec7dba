"""Attention on a CPU over two disjoint sets of keys, as two flash passes merged by their log-sum-exp.

The scorer (a suffix against its cached prefix, or sequences packed into one row) and the
generation backend (a batched decode step against the prefix all rows share) split attention this
way instead of giving sdpa a materialised mask: the public sdpa does not return the log-sum-exp,
its CPU kernel does. Each is registered with transformers under a name of its own, once, when the
engine sets a model up (`curate.engine.load`); nothing here runs on a GPU.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu  # sdpa's CPU kernel: (output, log-sum-exp)


def merged(
    first: torch.Tensor, first_lse: torch.Tensor, second: torch.Tensor, second_lse: torch.Tensor
) -> torch.Tensor:
    """Attention over both key sets, in float32, from each set's attention output [..., queries, dim]
    and log-sum-exp. A float32 `first` is overwritten with it (both outputs are a caller's temporaries:
    no new buffer as large as they are, which costs page faults and half the time on a CPU)."""
    lse = torch.logaddexp(first_lse, second_lse)
    weights = (first_lse - lse).exp_()[..., None], (second_lse - lse).exp_()[..., None]
    return first.float().mul_(weights[0]).addcmul_(second, weights[1])


@functools.cache
def scoring_attention() -> str:
    """Register (once) the attention the scorer runs on a CPU and return its name.

    It serves two calls sdpa would serve slowly: a batch packed into one row (`segments=`, the
    sequences' lengths in order: each attends causally to itself alone, so no row is padded) and
    queries after a cached prefix (`prefix=`, per layer the prefix's keys and values, batch 1:
    every query sees those positions, then the queries' own causally). sdpa would get either as a
    materialised mask, with which its flash kernel computes (and masks) every block. Here each
    sequence is one causal flash pass and, with a prefix, one unmasked pass over it (expanded to
    the batch, never copied), the two merged by their log-sum-exp (the public sdpa does not return
    it). The CPU kernel takes grouped key/value heads as they are. With neither it is sdpa with
    `is_causal`, as transformers runs an unpadded batch. It takes no mask: scoring never passes one
    (padding sits after the real tokens, which causal attention keeps them from seeing)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    def attention(
        module: Any,
        query: Any,
        key: Any,
        value: Any,
        attention_mask: Any,
        dropout: float = 0.0,
        scaling: float | None = None,
        prefix: Any = None,
        segments: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> tuple:
        if not prefix and segments is None:
            return sdpa_attention_forward(module, query, key, value, None, dropout, scaling, **kwargs)
        rows, heads, width, dim = query.shape
        if prefix:
            keys, values = (x.expand(rows, -1, -1, -1) for x in prefix[module.layer_idx])
        out = query.new_empty(rows, width, heads, dim)
        ends = np.cumsum(segments if segments is not None else [width]).tolist()
        for start, end in zip([0, *ends], ends):
            part = query[:, :, start:end]
            own, own_lse = flash(part, key[:, :, start:end], value[:, :, start:end], is_causal=True, scale=scaling)
            if prefix:
                seen, seen_lse = flash(part, keys, values, scale=scaling)
                own = merged(seen, seen_lse, own, own_lse)
            out[:, start:end] = own.transpose(1, 2)
        return out, None

    def no_mask(*args: Any, **kwargs: Any) -> None:
        return None

    AttentionInterface.register("curate_scoring", attention)
    AttentionMaskInterface.register("curate_scoring", no_mask)
    return "curate_scoring"


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean attention mask as the additive mask the flash kernel takes (0 where seen, the dtype's minimum not)."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)


def _shared_prefix(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    shared: int = 0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA on a CPU in two flash passes merged by their log-sum-exp, where one masked pass wastes work.

    A prefill (several queries, after a cache): sdpa given the mask computes every query against
    every key; here the queries meet the cached keys (padding masked) in one pass and their own
    tokens in a causal one, which skips the half above the diagonal. A batched decode step reads
    each row's whole cache, and that memory traffic, not arithmetic, is its cost: here all rows'
    queries meet row 0's copy of the `shared` first positions (the same tokens in every row) once,
    each row's query its own positions after them in the other pass. A key/value head's query heads
    are passed as that head's query positions, so nothing is repeated per query head.
    """
    queries, scale = query.shape[2], kwargs.get("scaling")
    if shared == 0 if queries == 1 else attention_mask is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if queries > 1:
        cached = key.shape[2] - queries  # the new tokens are the last columns; every cached one precedes them
        out, lse = flash(query, key[:, :, cached:], value[:, :, cached:], is_causal=True, scale=scale)
        if cached:
            assert attention_mask is not None  # several queries came with their mask (sdpa took them above otherwise)
            seen = attention_mask[:, :, :1, :cached]  # the same for every query: padding only
            before, before_lse = flash(
                query, key[:, :, :cached], value[:, :, :cached], attn_mask=_additive(seen, query.dtype), scale=scale
            )
            out = merged(out, lse, before, before_lse).to(query.dtype)
        return out.transpose(1, 2).contiguous(), None
    rows, heads, _, dim = query.shape
    groups = key.shape[1]  # key/value heads; each serves heads // groups query heads
    per_group = query.view(rows, groups, heads // groups, dim)
    everyone = per_group.transpose(0, 1).reshape(1, groups, -1, dim)  # [1, groups, rows * heads per group, dim]
    seen, seen_lse = flash(everyone, key[:1, :, :shared], value[:1, :, :shared], scale=scale)
    seen = seen.view(groups, rows, -1, dim).transpose(0, 1)
    seen_lse = seen_lse.view(groups, rows, -1).transpose(0, 1)
    mask = None if attention_mask is None else _additive(attention_mask[..., shared:], query.dtype)
    own, own_lse = flash(per_group, key[:, :, shared:], value[:, :, shared:], attn_mask=mask, scale=scale)
    out = merged(seen, seen_lse, own, own_lse)
    return out.reshape(rows, heads, 1, dim).transpose(1, 2).contiguous(), None


@functools.cache
def shared_prefix_attention() -> str:
    """Register (once) the attention the generation backend runs on a CPU and return its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register("curate_shared_prefix", _shared_prefix)
    AttentionMaskInterface.register("curate_shared_prefix", sdpa_mask)
    return "curate_shared_prefix"
