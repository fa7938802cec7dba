"""The transformers backend: a local checkpoint (CPU or GPU), batched generation with per-row key/value caches.

Per-request sampling inside one batch. Each row draws its token with its own parameters and random
numbers: HF's own temperature and top-p warpers, then the exponential race of `torch.multinomial`
with uniforms from that row's own `torch.Generator` (seeded from the request's seed), the rows'
arithmetic run as one batch (`_draws`); greedy at temperature 0.

The guarantee: a request's random draws depend only on its seed, never on the batch. Its logits
are the same computation whatever the batch (padding is masked out), equal up to float rounding
between batch shapes; so a request gives the same text alone or in any batch unless a draw lands
within rounding of a boundary between two tokens (tests check equality on real models). Same
request, same batch, same machine: bit-identical.

Each row ends at its own stop strings, end-of-turn tokens and token budget, and leaves the batch
there, so a row that stopped early costs nothing while the others decode.

Work is done once. A run's next prompt extends its last one (prompt, completion, observation), so
`_KeptCaches` keeps each row's key/value cache from the last call and the next call computes only
what a row adds; a prefix all rows of a call share (the system prompt) is computed once for them,
and a run that starts after another finds it in that run's kept cache. The rows' new tokens are
computed in one forward (a few hundred tokens alone keep a CPU far from its peak): each row's new
tokens follow its kept ones, padded at the end. The rows then decode together in the same cache,
with room for their tokens allocated once (`_Room`: no copy of the whole cache per token): the
prefix they all share at the same positions in every row, then each row's own tokens ending at the
same column, the padding between masked out and positions counted per row. On a CPU, decoding is
where batching pays: the engine (`curate.engine`) reads the weights once for every row (packed for
the step's rows) and the shared prefix once for all rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from os.path import commonprefix
from typing import Any

import torch
from transformers import AutoTokenizer, DynamicCache, TemperatureLogitsWarper, TopPLogitsWarper
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicLayer

from ...engine import load_causal_lm
from ...models import resolve_student
from . import Completion, GenRequest, chat_prompt, teacher_id, truncate_at_stop

# Tokens of the generated tail decoded per step to find a stop string, beyond its length in characters.
_TAIL_SLACK = 4
# A shared prefix shorter than this is computed with each row (a pass of its own is not worth it).
SHARED_MIN = 32

# Per layer, the (keys, values) of one sequence: tensors [heads, tokens, head_dim].
Layers = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class _Kept:
    """A sequence's token ids and the key/value cache computed for them."""

    ids: list[int]
    layers: Layers


class _KeptCaches:
    """The caches of the last call's rows and as many older ones, found again by the longest shared token prefix.

    The older ones (most recent first, none that a newer one extends) keep what the next run starts
    with when the last call held none of it: after a run's answer, asked for under another system
    prompt, the next run finds the system prompt in the run's last step, as a server's prefix cache
    would hold it. They cost at most as much memory as the last call's rows.
    """

    def __init__(self) -> None:
        self.kept: list[_Kept] = []

    def keep(self, rows: list[_Kept]) -> None:
        """The rows of the call just made, and as many older caches that none of them extends (until now, during
        the call, every kept cache stayed: the rows' found caches are views of them)."""
        older = [k for k in self.kept if not any(r.ids[: len(k.ids)] == k.ids for r in rows)]
        self.kept = rows + older[: len(rows)]

    def find(self, ids: list[int]) -> tuple[int, Layers]:
        """(tokens of `ids` whose cache is kept, that cache); always leaves at least one token to compute."""
        best, layers = 0, []
        for k in self.kept:
            n = min(len(commonprefix([k.ids, ids])), len(ids) - 1)
            if n > best:
                best, layers = n, k.layers
        return best, [(keys[:, :best], values[:, :best]) for keys, values in layers]


def _rows(cache: Cache, row: int) -> Layers:
    """Each layer's keys and values of one row of a cache (every layer of these caches is an attention layer)."""
    pairs = []
    for layer in cache.layers:
        assert isinstance(layer, CacheLayerMixin) and layer.keys is not None and layer.values is not None
        pairs.append((layer.keys[row], layer.values[row]))
    return pairs


def _generator(request: GenRequest, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(request.seed) if request.seed is not None else generator.seed()
    return generator


def _draws(requests: Sequence[GenRequest], generators: Sequence[torch.Generator], logits: torch.Tensor) -> list[int]:
    """The next token of each row from its logits [rows, vocab]: greedy at temperature 0, else sampled
    with the row's own warpers and generator. The rows' sums, logarithms and ratios run as one batch
    (one row at a time they cost 1 ms a row at a 49k vocabulary); each row's numbers are those it
    gets alone, so its draw does not depend on the batch."""
    tokens = logits.argmax(-1).tolist()
    sampled = [b for b, r in enumerate(requests) if r.temperature > 0]
    if not sampled:
        return tokens
    warped = []
    for b in sampled:
        scores = TemperatureLogitsWarper(requests[b].temperature)(None, logits[b : b + 1])
        warped.append(TopPLogitsWarper(requests[b].top_p)(None, scores) if requests[b].top_p < 1.0 else scores)
    # The exponential race torch.multinomial runs (argmax of p / q, q ~ Exp(1) per token), with q from
    # float64 uniforms: its own exponential_ draws them ~3x slower. Only the uniforms come row by row
    # (each from its row's generator). A draw stays an argmax, so rounding moves it only at a near-tie
    # of two ratios.
    race = (
        torch.stack(
            [
                torch.rand(logits.shape[-1], generator=generators[b], dtype=torch.float64, device=logits.device)
                for b in sampled
            ]
        )
        .log_()
        .neg_()
    )
    for b, token in zip(sampled, (torch.cat(warped).softmax(-1) / race).argmax(-1).tolist()):
        tokens[b] = token
    return tokens


class _Room(DynamicLayer):
    """One layer's batch cache, written in place into room allocated once for every token to come."""

    def __init__(self, rows: list[tuple[torch.Tensor, torch.Tensor]], shared: int, room: int) -> None:
        super().__init__()
        width = shared + max(keys.shape[1] - shared for keys, _ in rows)
        heads, _, dim = rows[0][0].shape
        self.room = [rows[0][0].new_zeros(len(rows), heads, width + room, dim) for _ in range(2)]
        # Every row: the shared prefix at the same positions, then its own tokens ending at `width`.
        for b, pair in enumerate(rows):
            for buffer, part in zip(self.room, pair):
                buffer[b, :, :shared] = part[:, :shared]
                buffer[b, :, width - part.shape[1] + shared : width] = part[:, shared:]
        self.length, self.is_initialized, self.device = width, True, self.room[0].device
        self._view()

    def _view(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys and values so far: views of the room, also set as the layer's own."""
        keys, values = (r[:, :, : self.length] for r in self.room)
        self.keys, self.values = keys, values
        return keys, values

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new tokens' keys and values after the last ones; the views grow, nothing is copied."""
        end = self.length + key_states.shape[-2]
        self.room[0][:, :, self.length : end], self.room[1][:, :, self.length : end] = key_states, value_states
        self.length = end
        return self._view()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only these rows."""
        self.room = [r[indices] for r in self.room]
        self._view()


class TransformersBackend:
    """A local causal LM: built-in name or checkpoint folder, batched generation with per-row sampling.

    `adapter`: a peft LoRA adapter folder (what `curate train` writes) applied to the model and merged
    into its weights, so generation runs at the base model's speed. `prefix_cache=False` recomputes
    every prompt whole (nothing kept between or within calls).
    """

    name = "transformers"

    def __init__(
        self,
        model: str,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int | None = None,
        prefix_cache: bool = True,
        adapter: str | None = None,
    ) -> None:
        path = resolve_student(model)
        self.model_id = teacher_id(model, adapter)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = dtype or ("bfloat16" if self.device.type == "cuda" else "float32")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.engine = load_causal_lm(path, self.device, dtype, "generate", adapter)
        self.model = self.engine.model
        # Where the logits are plain, every row's new tokens prefill in one forward (`_prefill_together`).
        self.plain = self.engine.plain
        config = self.model.generation_config
        eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
        self.eos = {t for t in [*eos, self.tokenizer.eos_token_id] if t is not None}
        self.batch_size = batch_size
        self.caches = _KeptCaches() if prefix_cache else None
        self.prefilled = 0  # prompt tokens computed so far (kept caches make it smaller)

    def prompt(self, request: GenRequest) -> str:
        """The text the model continues (`chat_prompt` with this model's tokenizer)."""
        return chat_prompt(self.tokenizer, request)

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        """One completion per request; requests of similar length share a batch."""
        ids = [self.tokenizer(self.prompt(r), add_special_tokens=False)["input_ids"] for r in requests]
        found: list[tuple[int, Layers]] = [(0, [])] * len(ids)
        if self.caches is not None:
            self._share_prefix(self.caches, ids)
            found = [self.caches.find(x) for x in ids]
        order = sorted(range(len(requests)), key=lambda i: len(ids[i]))
        size = self.batch_size or len(requests) or 1
        out: list[Completion | None] = [None] * len(requests)
        kept: list[_Kept] = []
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            done = self._batch([requests[i] for i in chunk], [ids[i] for i in chunk], [found[i] for i in chunk])
            for i, (completion, row) in zip(chunk, done):
                out[i] = completion
                if row is not None:
                    kept.append(row)
        if self.caches is not None:
            self.caches.keep(kept)  # what the next call can extend
        return out  # type: ignore[return-value]  # every request's slot was filled above

    def _share_prefix(self, caches: _KeptCaches, ids: list[list[int]]) -> None:
        """Compute once the prefix all rows share beyond what is kept (the system prompt), and keep it."""
        if len(ids) < 2:
            return
        shared = min(len(commonprefix(ids)), min(map(len, ids)) - 1)
        have, layers = caches.find(ids[0][: shared + 1])
        if shared - have >= SHARED_MIN:
            caches.kept.append(_Kept(ids[0][:shared], self._prefill(ids[0][:shared], have, layers)[0]))

    @torch.inference_mode()
    def _prefill(self, ids: list[int], have: int, layers: Layers) -> tuple[Layers, torch.Tensor]:
        """The cache of `ids` and the logits [1, vocab] after them, computing only `ids[have:]` on `layers`."""
        cache = DynamicCache(config=self.model.config)
        for layer, (keys, values) in enumerate(layers):
            cache.update(keys[None], values[None], layer)
        logits = self.model(
            input_ids=torch.tensor([ids[have:]], device=self.device),
            cache=cache,
            use_cache=True,
            position_ids=torch.arange(have, len(ids), device=self.device)[None],
            logits_to_keep=1,
        ).logits
        self.prefilled += len(ids) - have
        return _rows(cache, 0), logits[0, -1:].float()

    def _ended(self, request: GenRequest, tokens: list[int], tail: int) -> str | None:
        """Why a row ends after its last token ("stop" or "length"), or None while it goes on."""
        if tokens[-1] in self.eos:
            return "stop"
        if request.stop and any(s in self.tokenizer.decode(tokens[-tail:]) for s in request.stop):
            return "stop"
        return "length" if len(tokens) >= request.max_new_tokens else None

    @torch.inference_mode()
    def _batch(
        self, requests: list[GenRequest], ids: list[list[int]], found: list[tuple[int, Layers]]
    ) -> list[tuple[Completion, _Kept | None]]:
        room = max(r.max_new_tokens for r in requests)
        cache, mask, shared, logits = (self._prefill_together if self.plain else self._prefill_apart)(ids, found, room)
        positions = torch.tensor([[len(x)] for x in ids], device=self.device)
        self.engine.fit(len(ids))
        generators = [_generator(r, self.device) for r in requests]
        tails = [max((len(s) for s in r.stop), default=0) + _TAIL_SLACK for r in requests]
        tokens: list[list[int]] = [[] for _ in requests]
        done: list[tuple[Completion, _Kept | None] | None] = [None] * len(requests)
        rows = list(range(len(requests)))  # batch row -> request
        while True:
            stay = []
            drawn = _draws([requests[i] for i in rows], [generators[i] for i in rows], logits)
            for b, i in enumerate(rows):
                tokens[i].append(drawn[b])
                finish = self._ended(requests[i], tokens[i], tails[i])
                if finish is None:
                    stay.append(b)
                    continue
                decoded = self.tokenizer.decode(tokens[i], skip_special_tokens=True)
                text, _ = truncate_at_stop(decoded, requests[i].stop)
                # The cache holds the prompt and every generated token but the last (drawn, never fed).
                row = None
                if self.caches is not None:
                    held = mask[b].bool()
                    row = _Kept(ids[i] + tokens[i][:-1], [(k[:, held], v[:, held]) for k, v in _rows(cache, b)])
                done[i] = (Completion(text, len(tokens[i]), finish), row)
            if not stay:
                return done  # type: ignore[return-value]  # every row has ended, its slot filled
            if len(stay) < len(rows):
                index = torch.tensor(stay, device=self.device)
                cache.batch_select_indices(index)
                mask, positions, rows = mask[index], positions[index], [rows[b] for b in stay]
            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
            step = {
                "input_ids": torch.tensor([[tokens[i][-1]] for i in rows], device=self.device),
                "attention_mask": mask,
                "position_ids": positions,
                "cache": cache,
                "use_cache": True,
            }
            if self.plain:
                shares = {"shared": shared} if self.engine.reads_prefix else {}
                logits = self.engine.logits(self.model.get_decoder()(**step, **shares).last_hidden_state[:, -1]).float()
            else:
                logits = self.model(**step).logits[:, -1].float()
            positions = positions + 1

    def _prefill_together(
        self, ids: list[list[int]], found: list[tuple[int, Layers]], room: int
    ) -> tuple[Cache, torch.Tensor, int, torch.Tensor]:
        """Every row's new tokens in ONE forward, on the batch cache of what each row has kept (plain models).

        A few hundred tokens alone keep a CPU's cores far from their peak (126 tokens took 0.5 s, a
        thousand 1.6 s): together they are one large matrix product per layer. Each row's new tokens
        follow its kept tokens, padded at the end; a pad sees only what precedes it (never a row of
        nothing to attend to, which would be NaN) and nothing ever sees a pad (masked, and later).
        """
        have = [n for n, _ in found]
        shared = min(len(commonprefix(ids)), *have) if len(ids) > 1 else 0
        new = [x[n:] for x, n in zip(ids, have)]
        longest = max(map(len, new))
        pasts = [layers or self._nothing() for _, layers in found]
        cache, mask = self._batch_cache(pasts, have, shared, longest + room)
        mask = torch.cat([mask, torch.tensor([[1] * len(x) + [0] * (longest - len(x)) for x in new])], dim=1)
        mask = mask.to(self.device)
        step = {
            "input_ids": torch.tensor([x + [0] * (longest - len(x)) for x in new], device=self.device),
            "position_ids": torch.tensor([list(range(n, n + longest)) for n in have], device=self.device),
            "attention_mask": mask,
            "cache": cache,
            "use_cache": True,
        }
        hidden = self.model.get_decoder()(**step).last_hidden_state
        self.prefilled += sum(map(len, new))
        last = hidden[torch.arange(len(new)), torch.tensor([len(x) - 1 for x in new])]
        return cache, mask, shared, self.engine.logits(last).float()

    def _prefill_apart(
        self, ids: list[list[int]], found: list[tuple[int, Layers]], room: int
    ) -> tuple[Cache, torch.Tensor, int, torch.Tensor]:
        """Each row's new tokens alone, then the batch cache of all of them (models whose logits or attention
        are not plain: their own forward computes the logits, so rows cannot be padded at the end)."""
        prefilled = [self._prefill(x, n, layers) for x, (n, layers) in zip(ids, found)]
        cache, mask = self._batch_cache([layers for layers, _ in prefilled], list(map(len, ids)), 0, room)
        return cache, mask.to(self.device), 0, torch.cat([x for _, x in prefilled])

    def _batch_cache(
        self, rows: list[Layers], lengths: list[int], shared: int, room: int
    ) -> tuple[Cache, torch.Tensor]:
        """The batch cache of the rows' caches with `room` more tokens, and its mask [rows, width]: the
        `shared` first tokens at the same positions in every row, then each row's own ending at one column."""
        layers = [_Room([r[i] for r in rows], shared, room) for i in range(len(rows[0]))]
        width = layers[0].length
        mask = torch.tensor([[1] * shared + [0] * (width - n) + [1] * (n - shared) for n in lengths])
        # a new list, typed as the base's: a list of _Room is no list of CacheLayerMixin (lists are invariant)
        return Cache(layers=[*layers]), mask

    def _nothing(self) -> Layers:
        """The cache of no tokens."""
        config = self.model.config
        dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        empty = torch.empty(config.num_key_value_heads, 0, dim, dtype=self.model.dtype, device=self.device)
        return [(empty, empty)] * config.num_hidden_layers

    def close(self) -> None:
        """Drop the model and free accelerator memory."""
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
