"""The transformers backend: a local checkpoint (CPU or GPU), one padded batched `generate` per call.

Per-request sampling inside one batched call. `generate` draws every row's token from one global
random stream, so a row's sample would depend on the rest of the batch. Instead `generate` runs in
greedy mode and `_RowSampler`, the last logits processor, draws each row's token itself: HF's own
temperature and top-p warpers, then `torch.multinomial` with that row's own `torch.Generator`
(seeded from the request's seed), returning scores where only the drawn token is finite.

The guarantee: a request's random draws depend only on its seed, never on the batch. Its logits
are the same computation whatever the batch (left padding is masked out), equal up to float
rounding between batch shapes; so a request gives the same text alone or in any batch unless a draw
lands within rounding of a boundary between two tokens (tests check equality on real models).
Same request, same batch, same machine: bit-identical.

`_RowStop` ends each row at its own stop strings, end-of-turn tokens and token budget, and records
where and why, so token counts and finish reasons are per row.

Prompt prefixes are computed once. The rows of a batch share the system prompt (and the K samples of
a question their task too), and a run's next prompt extends its last one; `_PrefixCache` keeps the
KV cache of the last shared prefix and extends or crops it, so a batch prefills its shared prefix
once, not once per row, and one-run-at-a-time use reuses each step's prefix for the next.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from os.path import commonprefix
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from ...models import resolve_student
from . import Completion, GenRequest, chat_prompt, teacher_id, truncate_at_stop

# Tokens of the generated tail decoded per step to find a stop string, beyond its length in characters.
_TAIL_SLACK = 4
# A shared prefix shorter than this is prefilled with the rows (a separate pass is not worth it).
SHARED_MIN = 32


class _RowSampler(LogitsProcessor):
    """Draw each row's next token with its own temperature, top-p and generator (greedy at 0)."""

    def __init__(self, requests: Sequence[GenRequest], device: torch.device) -> None:
        self.requests = requests
        self.generators = []
        for r in requests:
            g = torch.Generator(device=device)
            g.manual_seed(r.seed) if r.seed is not None else g.seed()
            self.generators.append(g)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        chosen = torch.empty(scores.shape[0], dtype=torch.long, device=scores.device)
        for i, (r, g) in enumerate(zip(self.requests, self.generators)):
            row = scores[i : i + 1]
            if r.temperature <= 0:
                chosen[i] = row.argmax()
                continue
            row = TemperatureLogitsWarper(r.temperature)(input_ids[i : i + 1], row)
            if r.top_p < 1.0:
                row = TopPLogitsWarper(r.top_p)(input_ids[i : i + 1], row)
            chosen[i] = torch.multinomial(row.softmax(-1)[0], 1, generator=g)[0]
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(scores.shape[0], device=scores.device), chosen] = 0.0
        return out


class _RowStop(StoppingCriteria):
    """Per-row end: an end-of-turn token, one of the row's stop strings, or its token budget."""

    def __init__(self, requests: Sequence[GenRequest], tokenizer: Any, prompt_len: int, eos: set[int]) -> None:
        self.requests, self.tokenizer, self.prompt_len, self.eos = requests, tokenizer, prompt_len, eos
        self.count: list[int | None] = [None] * len(requests)  # generated tokens when the row ended
        self.finish: list[str] = ["length"] * len(requests)
        self.tail = [max((len(s) for s in r.stop), default=0) + _TAIL_SLACK for r in requests]

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        generated = input_ids[:, self.prompt_len :]
        n = generated.shape[1]
        last = generated[:, -1].tolist()
        for i, r in enumerate(self.requests):
            if self.count[i] is not None:
                continue
            if last[i] in self.eos:
                self.count[i], self.finish[i] = n, "stop"
            elif r.stop and any(s in self.tokenizer.decode(generated[i, -self.tail[i] :]) for s in r.stop):
                self.count[i], self.finish[i] = n, "stop"
            elif n >= r.max_new_tokens:
                self.count[i] = n
        return torch.tensor([c is not None for c in self.count], device=input_ids.device)


class _PrefixCache:
    """The KV cache of the last shared prompt prefix, reused by later calls as far as they share it."""

    def __init__(self, model: Any) -> None:
        self.model, self.ids, self.cache = model, [], None

    def get(self, ids: list[int]) -> DynamicCache:
        """A fresh cache holding `ids`: the kept one cropped to what it shares with them, then extended."""
        reuse = len(commonprefix([self.ids, ids])) if self.cache is not None else 0
        if reuse >= SHARED_MIN:
            cache = self.cache
            if reuse < len(self.ids):
                cache.crop(reuse - len(self.ids))  # a negative count: drop that many tokens from the end
        else:
            cache, reuse = DynamicCache(config=self.model.config), 0
        if len(ids) > reuse:
            tail = torch.tensor([ids[reuse:]], device=self.model.device)
            self.model(input_ids=tail, cache=cache, use_cache=True, logits_to_keep=1)
        self.ids, self.cache = list(ids), cache
        return copy.deepcopy(cache)


class TransformersBackend:
    """A local causal LM: built-in name or checkpoint folder, batched generation with per-row sampling.

    `adapter`: a peft LoRA adapter folder (what `curate train` writes) applied to the model and merged
    into its weights, so generation runs at the base model's speed.
    """

    name = "transformers"

    def __init__(self, model: str, device: str | None = None, dtype: str | None = None,
                 batch_size: int | None = None, prefix_cache: bool = True, adapter: str | None = None) -> None:
        path = resolve_student(model)
        self.model_id = teacher_id(model, adapter)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = dtype or ("bfloat16" if self.device.type == "cuda" else "float32")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        if adapter is not None:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, adapter).merge_and_unload()
        self.model = self.model.to(self.device).eval()
        config = self.model.generation_config
        eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
        self.eos = {t for t in [*eos, self.tokenizer.eos_token_id] if t is not None}
        self.pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos)
        self.batch_size = batch_size
        self.prefixes = _PrefixCache(self.model) if prefix_cache else None

    def prompt(self, request: GenRequest) -> str:
        """The text the model continues (`chat_prompt` with this model's tokenizer)."""
        return chat_prompt(self.tokenizer, request)

    def generate(self, requests: Sequence[GenRequest]) -> list[Completion]:
        """One completion per request; requests of similar prompt length share a padded batch."""
        prompts = [self.prompt(r) for r in requests]
        ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        order = sorted(range(len(requests)), key=lambda i: len(ids[i]))
        size = self.batch_size or len(requests) or 1
        out: list[Completion | None] = [None] * len(requests)
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            for i, completion in zip(chunk, self._batch([requests[i] for i in chunk], [ids[i] for i in chunk])):
                out[i] = completion
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def _batch(self, requests: list[GenRequest], ids: list[list[int]]) -> list[Completion]:
        # Rows are [shared prefix | left padding | own tokens]; the prefix comes from the prefix cache.
        shared = len(commonprefix(ids)) if self.prefixes is not None else 0
        shared = min(shared, min(map(len, ids)) - 1)
        cache = None
        if shared >= SHARED_MIN:
            cache = self.prefixes.get(ids[0][:shared])
            cache.batch_repeat_interleave(len(ids))
        else:
            shared = 0
        own = [x[shared:] for x in ids]
        pad = max(map(len, own))
        width = shared + pad
        head = ids[0][:shared]
        input_ids = torch.tensor([head + [self.pad] * (pad - len(x)) + x for x in own], device=self.device)
        mask = torch.tensor([[1] * shared + [0] * (pad - len(x)) + [1] * len(x) for x in own], device=self.device)
        stop = _RowStop(requests, self.tokenizer, width, self.eos)
        config = GenerationConfig(
            do_sample=False, max_new_tokens=max(r.max_new_tokens for r in requests),
            eos_token_id=sorted(self.eos), pad_token_id=self.pad, bos_token_id=self.model.generation_config.bos_token_id,
        )
        generated = self.model.generate(
            input_ids=input_ids, attention_mask=mask, generation_config=config, cache=cache,
            logits_processor=LogitsProcessorList([_RowSampler(requests, self.device)]),
            stopping_criteria=StoppingCriteriaList([stop]),
        )[:, width:].tolist()
        completions = []
        for i, r in enumerate(requests):
            count = stop.count[i] if stop.count[i] is not None else len(generated[i])
            text = self.tokenizer.decode(generated[i][:count], skip_special_tokens=True)
            text, _ = truncate_at_stop(text, r.stop)
            completions.append(Completion(text, count, stop.finish[i]))
        return completions

    def close(self) -> None:
        """Drop the model and free accelerator memory."""
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
