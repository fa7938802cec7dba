"""Token NLL of supervised tokens from one causal forward pass, in bounded memory.

The model body gives the final hidden states; the LM head is applied only at positions whose next
token is supervised, a chunk of positions at a time, and the log-softmax is taken in float32 per
chunk. Peak memory is the model, its activations for the batch, and one `[chunk × vocab]` float32
buffer: never the `[tokens × vocab]` logits (a 16k-token trajectory with Qwen's 151,936-token
vocabulary would need 9.7 GB for those).

Position t is scored when its token is supervised (turn >= 0) and t >= 1 (token 0 has no context):
its NLL is -log softmax(head(h[t-1]))[ids[t]].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_CHUNK_BYTES = 128 * 2**20
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class TurnNLL:
    """One assistant turn's score: supervised tokens, their NLL sum and mean (nats)."""

    turn: int
    tokens: int
    nll_sum: float

    @property
    def nll_mean(self) -> float:
        return self.nll_sum / self.tokens


@dataclass(frozen=True)
class TrajectoryNLL:
    """A trajectory's scored turns (turns wholly past the length limit are absent)."""

    turns: list[TurnNLL]
    truncated: bool

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.turns)

    @property
    def nll(self) -> float:
        """Macro average of the turn means: every turn counts the same."""
        return float(np.mean([t.nll_mean for t in self.turns])) if self.turns else float("nan")


def turn_totals(nll: np.ndarray, turn: Sequence[int]) -> dict[int, tuple[int, float]]:
    """Per turn: (tokens, NLL sum), from the NLLs of the supervised tokens of positions 1.. in order."""
    labels = np.asarray(turn[1:], dtype=np.int64)
    labels = labels[labels >= 0]
    if len(labels) != len(nll):
        raise ValueError(f"{len(nll)} token NLLs for {len(labels)} supervised positions")
    if not len(labels):
        return {}
    counts = np.bincount(labels)
    sums = np.bincount(labels, weights=np.asarray(nll, dtype=np.float64))
    return {int(m): (int(counts[m]), float(sums[m])) for m in np.flatnonzero(counts)}


def chunk_positions(vocab_size: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """How many positions' float32 logits fit in `chunk_bytes`."""
    return max(1, chunk_bytes // (4 * vocab_size))


def head_nll(model: Any, hidden: Any, targets: Any, chunk: int) -> Any:
    """NLL of `targets` [S] under the LM head applied to `hidden` [S, H], `chunk` rows at a time."""
    import torch

    head = model.get_output_embeddings()
    out = torch.empty(len(targets), dtype=torch.float32, device=hidden.device)
    for i in range(0, len(targets), chunk):
        logits = head(hidden[i : i + chunk]).float()
        picked = logits.gather(1, targets[i : i + chunk, None])[:, 0]
        out[i : i + chunk] = torch.logsumexp(logits, dim=-1) - picked
    return out


def supervised_nll(
    model: Any,
    seqs: Sequence[tuple[Sequence[int], Sequence[int]]],
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    pack: bool = False,
) -> list[np.ndarray]:
    """NLLs of the supervised tokens of each (ids, turn) sequence, from one forward pass for all.

    Padded: one row per sequence, right-padded, and no attention mask: under causal attention a
    real token only sees positions before it, which are real, so padding cannot reach the
    scored positions, and sdpa keeps its fast mask-free causal kernel (with a padding mask,
    mixed-length batches ran 2.9x slower on an H100). Packed: one row, position ids restarting
    per sequence; transformers then isolates the sequences (a varlen kernel for flash attention;
    for sdpa/eager a block-diagonal mask, which is correct but as slow as a padding mask).
    """
    import torch

    device = model.device
    lengths = [len(ids) for ids, _ in seqs]
    if pack:
        ids = torch.tensor([[i for s, _ in seqs for i in s]], device=device)
        # The first token of each sequence is never a target (nothing of its own precedes it).
        turn = torch.tensor([[x for _, t in seqs for x in (-1, *t[1:])]], device=device)
        position_ids = torch.cat([torch.arange(n, device=device) for n in lengths])[None]
    else:
        width = max(lengths)
        ids = torch.zeros((len(seqs), width), dtype=torch.long, device=device)
        turn = torch.full((len(seqs), width), -1, dtype=torch.long, device=device)
        for row, (s, t) in enumerate(seqs):
            ids[row, : len(s)] = torch.tensor(s)
            turn[row, 1 : len(t)] = torch.tensor(t[1:], dtype=torch.long)
        position_ids = None
    with torch.inference_mode():
        hidden = model.get_decoder()(input_ids=ids, position_ids=position_ids, use_cache=False).last_hidden_state
        rows, cols = torch.nonzero(turn[:, 1:] >= 0, as_tuple=True)
        chunk = chunk_positions(model.get_output_embeddings().weight.shape[0], chunk_bytes)
        nll = head_nll(model, hidden[rows, cols], ids[rows, cols + 1], chunk)
    nll = nll.double().cpu().numpy()
    if pack:
        counts = [sum(1 for x in t[1:] if x >= 0) for _, t in seqs]
    else:
        counts = torch.bincount(rows, minlength=len(seqs)).tolist()
    return np.split(nll, np.cumsum(counts)[:-1])


def turn_nlls(
    model: Any, rendering: Any, max_length: int | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> TrajectoryNLL:
    """Score one rendered trajectory (`.input_ids`, `.turn`) in one forward pass, cut at max_length."""
    ids, turn = list(rendering.input_ids), list(rendering.turn)
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids, turn = ids[:max_length], turn[:max_length]
    (nll,) = supervised_nll(model, [(ids, turn)], chunk_bytes)
    totals = turn_totals(nll, turn)
    return TrajectoryNLL([TurnNLL(m, n, s) for m, (n, s) in sorted(totals.items())], truncated)


def plan_batches(lengths: Sequence[int], batch_tokens: int, pack: bool = False) -> list[list[int]]:
    """Group sequence indices, longest first, so a batch's cost (padded: rows × longest; packed:
    the sum) stays within `batch_tokens`; a sequence longer than the budget goes alone."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches:
            batch = batches[-1]
            cost = sum(lengths[j] for j in batch) + lengths[i] if pack else (len(batch) + 1) * lengths[batch[0]]
            if cost <= batch_tokens:
                batch.append(i)
                continue
        batches.append([i])
    return batches


class TransformersBackend:
    """Score token sequences with a transformers causal LM loaded from a local folder."""

    name = "transformers"

    def __init__(
        self,
        path: str,
        device: str = "cpu",
        dtype: str = "float32",
        batch_tokens: int = 16384,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        pack: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        if dtype not in DTYPES:
            raise ValueError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("--device cuda: no CUDA device is visible to torch")
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        self.model.to(device).eval()
        self.batch_tokens, self.chunk_bytes, self.pack = batch_tokens, chunk_bytes, pack

    def nll(
        self, seqs: Sequence[tuple[Sequence[int], Sequence[int]]], on_batch: Callable[[int], None] | None = None
    ) -> list[np.ndarray]:
        """Supervised-token NLLs of each sequence, in input order; `on_batch(tokens)` after each batch."""
        out: list[np.ndarray] = [np.empty(0)] * len(seqs)
        for batch in plan_batches([len(ids) for ids, _ in seqs], self.batch_tokens, self.pack):
            for i, nll in zip(batch, supervised_nll(self.model, [seqs[i] for i in batch], self.chunk_bytes, self.pack)):
                out[i] = nll
            if on_batch:
                on_batch(sum(len(seqs[i][0]) for i in batch))
        return out

    def check_head(self, ids: Sequence[int], turn: Sequence[int]) -> None:
        """Fail when hidden states through the output embeddings do not give the model's own
        logits (a model with logit scaling or soft-capping would be scored wrongly)."""
        import torch

        (ours,) = supervised_nll(self.model, [(ids, turn)], self.chunk_bytes)
        with torch.inference_mode():
            x = torch.tensor([list(ids)], device=self.model.device)
            logits = self.model(input_ids=x, use_cache=False).logits[0, :-1].float()
            full = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="none")
        keep = torch.tensor([t >= 0 for t in turn[1:]], device=full.device)
        gap = float(np.max(np.abs(full[keep].double().cpu().numpy() - ours)))
        tolerance = 1e-3 if self.model.dtype == torch.float32 else 0.1
        if gap > tolerance:
            raise RuntimeError(
                f"{type(self.model).__name__}: NLL from final hidden states through the output embeddings "
                f"differs from the model's own logits by {gap:.3g}; curate score supports plain LM heads"
            )
