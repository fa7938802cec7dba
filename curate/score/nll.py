"""Token NLL of supervised tokens from causal forward passes, in bounded memory.

The model body gives the final hidden states; the LM head is applied only at positions whose next
token is supervised, a chunk of positions at a time, and the log-softmax is taken in float32 per
chunk. Peak memory is the model, its activations for the batch, and two `[chunk × vocab]` float32
buffers (logits and log-softmax, kept between calls): never the `[tokens × vocab]` logits (a
16k-token trajectory with Qwen's 151,936-token vocabulary would need 9.7 GB for those). The model
comes from `curate.engine`, which decides how its products and attention run; this module asks the
engine what the model can do (`Engine.reads_prefix`, `Engine.logits`).

Position t is scored when its token is supervised (turn >= 0) and t >= 1 (token 0 has no context):
its NLL is -log softmax(head(h[t-1]))[ids[t]], and its rank (the rank-surprisal ratio's, RSR) is
1 + the number of logits of head(h[t-1]) strictly above the token's, clipped at `RANK_CLIP`, read
from the same logits the NLL is.

Shared prefixes (`curate.score.prefix`): the key/value cache of a prefix is computed once (batch 1) and
each batch of suffixes attends to it, expanded across the batch as it is read and never copied
per row or batch, so memory stays that of the suffixes plus one copy of the prefix cache per layer.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import Engine, load_causal_lm, prefix_support
from .prefix import PrefixNode, plan_prefixes

DEFAULT_CHUNK_BYTES = 128 * 2**20
DTYPES = ("float32", "bfloat16")
Prefix = list  # per layer (keys, values), each [1, kv_heads, prefix tokens, head_dim]
RANK_CLIP = 100  # the RSR paper's clip of a token's rank (UmeanNever/RankSurprisalRatio, rank_clip_r)
# A token whose probability is above 1/2 has rank 1: a logit above its own would carry more
# probability still, and the two would sum past 1. Such tokens, most of what a student predicts
# well, need no comparison; 0.67 nats (p > 0.51) leaves a margin float32 rounding cannot cross.
TOP1_NLL = 0.67


@dataclass(frozen=True)
class TokenScores:
    """What the head gives for the supervised tokens of one sequence, in order: NLLs, and their
    clipped ranks (None where ranks were not asked for or the backend has none)."""

    nll: np.ndarray
    rank: np.ndarray | None = None


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


def turn_rank_sums(rank: np.ndarray, turn: Sequence[int]) -> dict[int, int]:
    """Per turn: the sum of its tokens' clipped ranks, as `turn_totals` reads the turns."""
    labels = np.asarray(turn[1:], dtype=np.int64)
    labels = labels[labels >= 0]
    if len(labels) != len(rank):
        raise ValueError(f"{len(rank)} token ranks for {len(labels)} supervised positions")
    sums = np.bincount(labels, weights=np.asarray(rank, dtype=np.float64)) if len(labels) else np.zeros(0)
    return {int(m): int(sums[m]) for m in np.unique(labels)}


def chunk_positions(vocab_size: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """How many positions' float32 logits fit in `chunk_bytes`."""
    return max(1, chunk_bytes // (4 * vocab_size))


def head_chunk(engine: Engine, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Positions per chunk of `head_nll`: their float32 logits fit in `chunk_bytes`, within the
    engine's bound on a head product's rows where it has one."""
    chunk = chunk_positions(engine.model.get_output_embeddings().out_features, chunk_bytes)
    return chunk if engine.fresh_head_rows is None else min(chunk, engine.fresh_head_rows)


@functools.lru_cache(maxsize=2)
def _head_workspace(use: str, rows: int, vocab: int, dtype: Any, device: Any) -> Any:
    """A buffer of `head_nll` (`use`: logits or log-softmax), kept from call to call: fresh ones
    cost a page fault per 4 KiB each chunk (on a CPU, a third of the head's time at a 49k vocabulary)."""
    import torch

    return torch.empty(rows, vocab, dtype=dtype, device=device)


def head_nll(engine: Engine, hidden: Any, targets: Any, chunk: int) -> Any:
    """NLL of `targets` [S] under the LM head applied to `hidden` [S, H], `chunk` rows at a time."""
    return head_scores(engine, hidden, targets, chunk)[0]


def head_scores(engine: Engine, hidden: Any, targets: Any, chunk: int, rank_clip: int | None = None) -> tuple:
    """NLL of `targets` [S] under the LM head applied to `hidden` [S, H], `chunk` rows at a time,
    and with `rank_clip` their ranks among the same logits, clipped (else None)."""
    import torch

    head = engine.model.get_output_embeddings()
    # A head that writes every product afresh takes no buffer; any other fills one kept from call to call.
    fresh = engine.fresh_head_rows is not None
    logits = None if fresh else _head_workspace("logits", chunk, head.out_features, head.weight.dtype, hidden.device)
    logp = _head_workspace("log-softmax", chunk, head.out_features, torch.float32, hidden.device)
    out = torch.empty(len(targets), dtype=torch.float32, device=hidden.device)
    ranks = None if rank_clip is None else torch.empty(len(targets), dtype=torch.int32, device=hidden.device)
    for i in range(0, len(targets), chunk):
        rows = hidden[i : i + chunk]
        scores = engine.logits(rows, logits).float()
        # log_softmax into the kept buffer (the public op allocates its output); float32 either way
        torch.ops.aten._log_softmax.out(scores, -1, False, out=logp[: len(rows)])
        out[i : i + chunk] = -logp[: len(rows)].gather(1, targets[i : i + chunk, None])[:, 0]
        if ranks is not None and rank_clip is not None:
            # the log-softmax buffer is free again: it takes the rows that need a comparison
            ranks[i : i + chunk] = _clipped_ranks(scores, targets[i : i + chunk], out[i : i + chunk], logp, rank_clip)
    return out, ranks


def _clipped_ranks(scores: Any, targets: Any, nll: Any, work: Any, clip: int) -> Any:
    """min(1 + the logits of each row strictly above its target's, clip), int32; rows whose NLL
    says their target is the top-1 token are not compared."""
    import torch

    ranks = torch.ones(len(targets), dtype=torch.int32, device=scores.device)
    unsure = torch.nonzero(nll >= TOP1_NLL)[:, 0]
    if len(unsure):
        rows = torch.index_select(scores, 0, unsure, out=work[: len(unsure)])
        target = rows.gather(1, targets[unsure, None])
        torch.gt(rows, target, out=rows)  # 1.0 where a logit is above the target's
        ranks[unsure] = rows.sum(1).add_(1).clamp_(max=clip).to(torch.int32)
    return ranks


def _cache_argument(decoder: Any) -> str:
    """The name the model body takes its cache under (`cache` from transformers 5, before that
    `past_key_values`)."""
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


@functools.cache
def _prefix_cache_class() -> type:
    import torch
    from transformers import DynamicCache

    class PrefixCache(DynamicCache):
        """Holds a prefix's keys and values (batch 1), which positions and masks start after. When
        `joined`, every layer attends to the prefix (expanded to the batch) followed by the batch's
        own keys and values; otherwise attention reads the prefix itself (the engine's attention) and
        the batch's own pass on as they are. Never grows; with `recorded` a list, keeps the new ones."""

        def __init__(self, prefix: Prefix, recorded: list | None, joined: bool) -> None:
            super().__init__()
            for layer, (keys, values) in enumerate(prefix):
                super().update(keys, values, layer)  # the length that masks and positions start from
            self.prefix, self.recorded, self.joined = prefix, recorded, joined

        def update(self, key_states: Any, value_states: Any, layer_idx: int, *args: Any, **kwargs: Any) -> tuple:
            if self.recorded is not None:
                self.recorded.append((key_states, value_states))
            if not (self.joined and self.prefix):
                return key_states, value_states
            keys, values = self.prefix[layer_idx]
            rows = (key_states.shape[0], -1, -1, -1)
            return (
                torch.cat([keys.expand(rows), key_states], dim=-2),
                torch.cat([values.expand(rows), value_states], dim=-2),
            )

    return PrefixCache


def prefix_arguments(engine: Engine, prefix: Prefix, record: bool = False) -> tuple[Any, dict[str, Any]]:
    """The cache and the decoder arguments that put `prefix` before the tokens of a forward pass.
    An engine whose attention reads a prefix is given it to read; stock attention gets it joined to
    every layer's keys and values by the cache. With `record`, the cache keeps the new keys and
    values in `.recorded`, to extend the prefix."""
    reads = engine.reads_prefix
    cache = _prefix_cache_class()(prefix, [] if record else None, not reads)
    extra = {_cache_argument(engine.model.get_decoder()): cache}
    if reads and prefix:
        extra["prefix"] = prefix
    return cache, extra


def packs(engine: Engine, pack: bool, prefix: Prefix | None) -> bool:
    """Whether a batch runs packed: always where the attention reads packed sequences (no padding);
    on stock attention when asked, without a prefix (its packed rows are told apart by positions
    restarting at 0)."""
    return engine.reads_prefix or (pack and not prefix)


def extend_prefix(engine: Engine, prefix: Prefix, ids: Sequence[int]) -> Prefix:
    """The key/value cache of `prefix` followed by the tokens `ids` (one forward pass, batch 1)."""
    import torch

    cache, extra = prefix_arguments(engine, prefix, record=True)
    with torch.inference_mode():
        engine.model.get_decoder()(input_ids=torch.tensor([list(ids)], device=engine.device), use_cache=False, **extra)
    if not prefix:
        return list(cache.recorded)
    return [
        (torch.cat([k, nk], dim=-2), torch.cat([v, nv], dim=-2)) for (k, v), (nk, nv) in zip(prefix, cache.recorded)
    ]


def supervised_nll(
    engine: Engine,
    seqs: Sequence[tuple[Sequence[int], Sequence[int]]],
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    pack: bool = False,
    prefix: Prefix | None = None,
) -> list[np.ndarray]:
    """NLLs of the supervised tokens of each (ids, turn) sequence, from one forward pass for all
    (`supervised_scores` without ranks)."""
    return [s.nll for s in supervised_scores(engine, seqs, chunk_bytes, pack, prefix)]


def supervised_scores(
    engine: Engine,
    seqs: Sequence[tuple[Sequence[int], Sequence[int]]],
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    pack: bool = False,
    prefix: Prefix | None = None,
    rank_clip: int | None = None,
) -> list[TokenScores]:
    """NLLs of the supervised tokens of each (ids, turn) sequence, from one forward pass for all,
    with their ranks clipped at `rank_clip` (None: no ranks).

    Padded: one row per sequence, right-padded, and no attention mask: under causal attention a
    real token only sees positions before it, which are real, so padding cannot reach the
    scored positions, and sdpa keeps its fast mask-free causal kernel (with a padding mask,
    mixed-length batches ran 2.9x slower on an H100). Packed: one row, position ids restarting
    per sequence and nothing padded. An engine whose attention reads packed sequences is told the
    sequences' lengths and attends within each; on stock attention transformers isolates them by
    their position ids (a varlen kernel for flash attention; for sdpa/eager a block-diagonal mask,
    which is correct but as slow as a padding mask).
    With `prefix` (padded, or packed where the engine reads both), every sequence continues that
    prefix: its positions start after the prefix and attention reaches back into it. Token 0 of a
    sequence is still never scored (its NLL would need the prefix's last hidden state):
    `curate.score.prefix` ends a prefix before it.
    """
    import torch

    device = engine.device
    lengths = [len(ids) for ids, _ in seqs]
    extra: dict[str, Any] = {}
    if pack:
        ids = torch.tensor([[i for s, _ in seqs for i in s]], device=device)
        # The first token of each sequence is never a target (nothing of its own precedes it).
        turn = torch.tensor([[x for _, t in seqs for x in (-1, *t[1:])]], device=device)
        start = prefix[0][0].shape[-2] if prefix else 0
        extra["position_ids"] = torch.cat([torch.arange(start, start + n, device=device) for n in lengths])[None]
        if engine.reads_prefix:
            extra["segments"] = lengths
    else:
        width = max(lengths)
        ids = torch.zeros((len(seqs), width), dtype=torch.long, device=device)
        turn = torch.full((len(seqs), width), -1, dtype=torch.long, device=device)
        for row, (s, t) in enumerate(seqs):
            ids[row, : len(s)] = torch.tensor(s)
            turn[row, 1 : len(t)] = torch.tensor(t[1:], dtype=torch.long)
    if prefix:
        extra.update(prefix_arguments(engine, prefix)[1])
    with torch.inference_mode():
        hidden = engine.model.get_decoder()(input_ids=ids, use_cache=False, **extra).last_hidden_state
        rows, cols = torch.nonzero(turn[:, 1:] >= 0, as_tuple=True)
        nll, rank = head_scores(
            engine, hidden[rows, cols], ids[rows, cols + 1], head_chunk(engine, chunk_bytes), rank_clip
        )
    if pack:
        counts = [sum(1 for x in t[1:] if x >= 0) for _, t in seqs]
    else:
        counts = torch.bincount(rows, minlength=len(seqs)).tolist()
    cuts = np.cumsum(counts)[:-1]
    nlls = np.split(nll.double().cpu().numpy(), cuts)
    ranks = np.split(rank.cpu().numpy(), cuts) if rank is not None else [None] * len(seqs)
    return [TokenScores(n, r) for n, r in zip(nlls, ranks)]


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


def score_sequences(
    engine: Engine,
    seqs: Sequence[tuple[Sequence[int], Sequence[int]]],
    batch_tokens: int,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    pack: bool = False,
    prefix_reuse: bool = True,
    on_batch: Callable[[int], None] | None = None,
    rank_clip: int | None = None,
) -> list[TokenScores]:
    """Supervised-token NLLs (and ranks clipped at `rank_clip`, unless None) of each sequence, in
    input order, batched within `batch_tokens`; with `prefix_reuse`, shared prefixes are computed
    once (`curate.score.prefix`). A sequence with no supervised token is not run. `on_batch(tokens)`
    follows every forward pass."""
    none = TokenScores(np.empty(0), None if rank_clip is None else np.empty(0, dtype=np.int32))
    out: list[TokenScores] = [none] * len(seqs)
    scored = [i for i, (_, turn) in enumerate(seqs) if any(t >= 0 for t in turn[1:])]
    work = [seqs[i] for i in scored]
    root = plan_prefixes(work) if prefix_reuse else PrefixNode(0, 0, None, [], list(range(len(work))))
    report = on_batch or (lambda tokens: None)

    def run(node: PrefixNode, prefix: Prefix) -> None:
        if node.end > node.start:
            assert node.rep is not None  # a node with tokens of its own names the sequence they are read from
            prefix = extend_prefix(engine, prefix, work[node.rep][0][node.start : node.end])
            report(node.end - node.start)
        for child in node.children:
            run(child, prefix)
        suffixes = [(work[i][0][node.end :], work[i][1][node.end :]) for i in node.leaves]
        packed = packs(engine, pack, prefix)
        for batch in plan_batches([len(ids) for ids, _ in suffixes], batch_tokens, packed):
            scores = supervised_scores(engine, [suffixes[j] for j in batch], chunk_bytes, packed, prefix, rank_clip)
            for j, got in zip(batch, scores):
                out[scored[node.leaves[j]]] = got
            report(sum(len(suffixes[j][0]) for j in batch))

    run(root, [])
    return out


def _worst(ours: np.ndarray, theirs: np.ndarray, first: int) -> str:
    """The largest gap between two runs of token NLLs (the first for token `first`), where and what."""
    i = int(np.argmax(np.abs(ours - theirs)))
    return f"{abs(ours[i] - theirs[i]):.3g} at token {first + i}: {ours[i]:.6g} against {theirs[i]:.6g}"


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
        prefix_reuse: bool = True,
        rank_clip: int | None = RANK_CLIP,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
        self.engine = load_causal_lm(path, device, dtype, "score")
        self.model = self.engine.model
        self.batch_tokens, self.chunk_bytes, self.pack = batch_tokens, chunk_bytes, pack
        self.rank_clip = rank_clip  # None: no ranks (bench/rsr.py times scoring without them)
        # On stock attention, packed rows restart positions per sequence, which a prefix cannot follow.
        self.no_prefix_reason = (
            "off (--no-prefix-reuse)"
            if not prefix_reuse
            else prefix_support(self.model.config)
            or ("off (--pack)" if pack and not self.engine.reads_prefix else None)
        )
        self.prefix_reuse = self.no_prefix_reason is None

    def nll(
        self, seqs: Sequence[tuple[Sequence[int], Sequence[int]]], on_batch: Callable[[int], None] | None = None
    ) -> list[np.ndarray]:
        """Supervised-token NLLs of each sequence, in input order; `on_batch(tokens)` after each
        forward pass, with the tokens it ran."""
        return [s.nll for s in self._score(seqs, on_batch, None)]

    def scores(
        self, seqs: Sequence[tuple[Sequence[int], Sequence[int]]], on_batch: Callable[[int], None] | None = None
    ) -> list[TokenScores]:
        """`nll`, with each token's rank clipped at `rank_clip` (unless None)."""
        return self._score(seqs, on_batch, self.rank_clip)

    def _score(
        self, seqs: Sequence[tuple[Sequence[int], Sequence[int]]], on_batch: Any, rank_clip: int | None
    ) -> list[TokenScores]:
        return score_sequences(
            self.engine, seqs, self.batch_tokens, self.chunk_bytes, self.pack, self.prefix_reuse, on_batch, rank_clip
        )

    def check(self, ids: Sequence[int]) -> None:
        """Fail when hidden states through the output embeddings do not give the model's own
        logits (a model with logit scaling or soft-capping would be scored wrongly), or when a
        sequence scored after its first half as a cached prefix does not score as a whole."""
        import torch

        ids = list(ids)[: getattr(self.model.config, "max_position_embeddings", len(ids))]
        whole = [-1] + [0] * (len(ids) - 1)
        (ours,) = supervised_nll(self.engine, [(ids, whole)], self.chunk_bytes, packs(self.engine, self.pack, None))
        with torch.inference_mode():
            x = torch.tensor([ids], device=self.model.device)
            logits = self.model(input_ids=x, use_cache=False).logits[0, :-1].float()
            full = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="none").double().cpu().numpy()
        tolerance = 1e-3 if self.model.dtype == torch.float32 else 0.1
        if np.max(np.abs(full - ours)) > tolerance:
            raise RuntimeError(
                f"{type(self.model).__name__}: NLL from final hidden states through the output embeddings "
                f"differs from the model's own logits by {_worst(ours, full, 1)}; curate score supports plain LM heads"
            )
        if self.prefix_reuse:
            half = len(ids) // 2
            prefix = extend_prefix(self.engine, [], ids[:half])
            (cached,) = supervised_nll(
                self.engine,
                [(ids[half:], whole[half:])],
                self.chunk_bytes,
                packs(self.engine, self.pack, prefix),
                prefix,
            )
            if np.max(np.abs(cached - ours[half:])) > tolerance:
                raise RuntimeError(
                    f"{type(self.model).__name__}: scoring after a cached prefix differs from scoring the whole "
                    f"sequence by {_worst(cached, ours[half:], half + 1)}; run with --no-prefix-reuse"
                )
