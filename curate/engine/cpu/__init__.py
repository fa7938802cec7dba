"""What a float32 model on a CPU gets: this machine's kernels, set up once by `curate.engine.load`.

- `linears.py`: linear layers through oneDNN with weights packed once (scoring), and MKL packs for
  the few rows of a decode step (generation);
- `attention.py`: two flash passes merged by their log-sum-exp, for a prefix read in place and
  packed sequences (scoring) and for the prefix every row of a decode step shares (generation);
- `threads.py`: how OpenMP threads wait, chosen before torch is imported.
"""

from __future__ import annotations

from typing import Any

from ..model import Engine, plain_head, prefix_support


def scoring_engine(model: Any) -> Engine:
    """A float32 CPU model set up for scoring: oneDNN products, and an attention that reads a
    cached prefix in place and packed sequences (where the model's cache can be a prefix)."""
    import torch

    from .attention import scoring_attention
    from .linears import to_onednn

    reads = prefix_support(model.config) is None
    if reads:
        model.set_attn_implementation(scoring_attention())
    if not torch.backends.mkldnn.is_available():
        return Engine(model, reads_prefix=reads)
    to_onednn(model)
    return Engine(model, reads_prefix=reads, fresh_head_rows=model.get_output_embeddings().fresh_rows())


def generation_engine(model: Any) -> Engine:
    """A float32 CPU model set up for batched decoding: the rows' shared prefix read once, weights
    packed for a step's rows, and logits as weight @ hidden.T, which MKL computes about twice as
    fast as F.linear for a few rows of a large vocabulary (models whose logits are plain only)."""
    import torch

    from .attention import shared_prefix_attention
    from .linears import FEWEST, Packs

    if not (plain_head(model) and model.config._attn_implementation == "sdpa"):
        return Engine(model)
    model.set_attn_implementation(shared_prefix_attention())
    weight = model.get_output_embeddings().weight
    packs = Packs(model.get_decoder(), model.get_output_embeddings()) if torch.backends.mkl.is_available() else None

    def head(hidden: Any, out: Any = None) -> Any:
        if packs is not None and FEWEST <= len(hidden) <= packs.rows:
            return packs.head(hidden)
        return (weight @ hidden.T).T

    return Engine(model, reads_prefix=True, packs=packs, head=head, plain=True)
