"""The vLLM scoring backend (optional extra): token NLLs from `prompt_logprobs`.

vLLM returns, for every prompt position t >= 1, the log-probability of the prompt's own token
given the tokens before it, and its rank; the scorer keeps those at supervised positions, so the
rows it writes have exactly the schema and meaning of the transformers backend's. vLLM ranks a
token by the log-probabilities at or above its own (the transformers backend: the logits strictly
above), which differ only where two tokens tie to float precision. A vLLM whose logprobs carry no
rank gives none, and the run says so (`no_rank_reason`): its trajectories have no RSR.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from ..engine.vllm import import_vllm, make_llm, stop_llm
from .nll import RANK_CLIP, TokenScores


class VllmBackend:
    """Score token sequences with a vLLM engine over a local model folder."""

    name = "vllm"

    def __init__(self, path: str, dtype: str, max_length: int) -> None:
        vllm = import_vllm()
        # One generated token follows each prompt, so the engine's window is one longer than the
        # longest scored sequence: at the model's full context that is one past it, which vLLM allows
        # only when asked (the extra position holds that discarded token).
        os.environ["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] = "1"
        self.llm = make_llm(vllm, model=path, dtype=dtype, max_model_len=max_length + 1)
        self.params = vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False)
        self.rank_clip: int | None = RANK_CLIP
        self.no_rank_reason: str | None = None

    def close(self) -> None:
        stop_llm(self.llm)

    def nll(
        self, seqs: Sequence[tuple[Sequence[int], Sequence[int]]], on_batch: Callable[[int], None] | None = None
    ) -> list[np.ndarray]:
        """Supervised-token NLLs of each sequence, in input order (vLLM batches internally)."""
        return [s.nll for s in self.scores(seqs, on_batch)]

    def scores(
        self, seqs: Sequence[tuple[Sequence[int], Sequence[int]]], on_batch: Callable[[int], None] | None = None
    ) -> list[TokenScores]:
        """`nll`, with each token's rank clipped at `rank_clip` where vLLM gives ranks."""
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=list(ids)) for ids, _ in seqs]
        outputs = self.llm.generate(prompts, self.params, use_tqdm=False)
        result = []
        for (ids, turn), out in zip(seqs, outputs):
            found = [out.prompt_logprobs[t][ids[t]] for t in range(1, len(ids)) if turn[t] >= 0]
            nll = np.array([-p.logprob for p in found], dtype=np.float64)
            if self.rank_clip is not None and any(p.rank is None for p in found):
                self.rank_clip, self.no_rank_reason = None, "this vLLM's prompt_logprobs carry no rank"
            rank = None if self.rank_clip is None else np.minimum([p.rank for p in found], self.rank_clip)
            result.append(TokenScores(nll, None if rank is None else rank.astype(np.int32)))
        if on_batch:
            on_batch(sum(len(ids) for ids, _ in seqs))
        return result
