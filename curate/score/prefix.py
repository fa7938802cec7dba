"""Shared prefixes of the sequences to score: found once per block, computed once, reused.

Trajectories repeat long prefixes: the system prompt of every run, and per question the task.
Nothing before a sequence's first supervised token is scored, so the key/value cache of a shared
prefix can be computed once and every sequence's suffix scored against it; the NLLs are those of
the whole sequence. This module only plans: which prefixes are worth a cache of their own, and
which sequences are scored against which. `curate.score.nll` runs the plan.

The plan is a tree. A node covers tokens [start, end) of all sequences below it (tokens before
`start` are its parent's); its `leaves` are scored as their tokens from `end` on, against the
cache of tokens [0, end). The root covers nothing: its leaves are scored whole. A prefix may
reach at most the token before a sequence's first supervised one, so a suffix never starts
with a scored token (its NLL would need the prefix's last hidden state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# A prefix gets its own cache when sharing it saves at least this many token positions
# ((members - 1) x its length): below that, one more small forward pass and smaller batches cost
# more than they save.
MIN_SAVED_TOKENS = 256


@dataclass
class PrefixNode:
    """A shared prefix: tokens [start, end) of `rep`'s ids, and what is scored against it."""

    start: int
    end: int
    rep: int | None
    children: list[PrefixNode] = field(default_factory=list)
    leaves: list[int] = field(default_factory=list)


def shareable(ids: Sequence[int], turn: Sequence[int]) -> int:
    """How many leading tokens may sit in a shared prefix: up to the one before the first scored
    token (position t >= 1 with turn[t] >= 0), and never the whole sequence."""
    first = next((t for t in range(1, len(turn)) if turn[t] >= 0), len(ids))
    return max(0, min(first - 1, len(ids) - 1))


def _common(a: Sequence[int], b: Sequence[int], cap: int) -> int:
    n = 0
    while n < cap and a[n] == b[n]:
        n += 1
    return n


def plan_prefixes(seqs: Sequence[tuple[Sequence[int], Sequence[int]]], min_saved: int = MIN_SAVED_TOKENS) -> PrefixNode:
    """The prefix tree of `seqs` ((ids, turn) pairs): every index is a leaf of exactly one node."""
    caps = [shareable(ids, turn) for ids, turn in seqs]
    order = sorted(range(len(seqs)), key=lambda i: list(seqs[i][0][: caps[i]]))
    # lcp[k]: tokens that sorted neighbours k and k+1 share and may both put in a prefix; the
    # common prefix of any sorted range is the minimum over it.
    lcp = [_common(seqs[a][0], seqs[b][0], min(caps[a], caps[b])) for a, b in zip(order, order[1:])]

    def split(lo: int, hi: int, start: int) -> tuple[list[PrefixNode], list[int]]:
        """Nodes and leaves for sorted range [lo, hi), all sharing tokens [0, start)."""
        if hi - lo == 1:
            return [], [order[lo]]
        shared = min(lcp[lo : hi - 1])
        cuts = [k + 1 for k in range(lo, hi - 1) if lcp[k] == shared]
        worth = (hi - lo - 1) * (shared - start) >= min_saved
        below = shared if worth else start
        nodes, leaves = [], []
        for a, b in zip([lo, *cuts], [*cuts, hi]):
            n, leaf = split(a, b, below)
            nodes += n
            leaves += leaf
        if worth:
            return [PrefixNode(start, shared, order[lo], nodes, leaves)], []
        return nodes, leaves

    nodes, leaves = split(0, len(seqs), 0) if seqs else ([], [])
    return PrefixNode(0, 0, None, nodes, leaves)
