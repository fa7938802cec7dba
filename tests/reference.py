"""The paper's per-turn NLL recipe, written independently of curate's scorer: one forward pass
per assistant turn over the history rendered up to and including that turn, full logits, plain
cross-entropy over that turn's tokens (those that start after the generation prompt: a token the
prompt's last characters share with the turn's first ones is context). Tests check `curate score`
against it; bench/score.py and bench/score_real.py time it.

Beside it, from the same full logits: each token's rank as the RSR paper's rsr_cal.py computes it
(1 + the logits strictly above the token's, clipped at 100) and a trajectory's RSR (clipped ranks
summed over all its scored tokens / their NLLs summed); and IFD's "alone" pass (the turn rendered
as a chat of that one assistant message, scored from where its content starts)."""

from __future__ import annotations

import math

import torch

RANK_CLIP = 100


def _scored(model, ids: list[int], first: int, clip: int) -> tuple[int, float, int]:
    """Tokens, NLL sum and clipped-rank sum of ids[first:] under one full forward pass over ids."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, first - 1 : -1].float()
    targets = torch.tensor(ids[first:])
    losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    above = (logits > logits.gather(1, targets[:, None])).sum(1)
    ranks = torch.clamp(1 + above, max=clip)
    return len(losses), float(losses.double().sum()), int(ranks.sum())


def reference_turn_ranks(
    model, tokenizer, chat: list[dict], max_length: int, clip: int = RANK_CLIP
) -> dict[int, tuple[int, float, int]]:
    """Per assistant turn m: (tokens, NLL sum, clipped-rank sum) over the tokens that fit in max_length."""
    out = {}
    ends = [i for i, m in enumerate(chat) if m["role"] == "assistant"]
    for m, i in enumerate(ends):
        head = tokenizer.apply_chat_template(chat[:i], tokenize=False, add_generation_prompt=True)
        upto = tokenizer.apply_chat_template(chat[: i + 1], tokenize=False)
        assert upto.startswith(head)
        encoding = tokenizer(upto, add_special_tokens=False, return_offsets_mapping=True)
        ids = encoding["input_ids"][:max_length]
        first = next(
            (k for k, (start, _) in enumerate(encoding["offset_mapping"][: len(ids)]) if start >= len(head)), len(ids)
        )
        if first >= len(ids):
            continue
        out[m] = _scored(model, ids, first, clip)
    return out


def reference_turns(model, tokenizer, chat: list[dict], max_length: int) -> dict[int, tuple[int, float]]:
    """Per assistant turn m: (tokens, NLL sum) over the tokens that fit in max_length."""
    return {m: (n, s) for m, (n, s, _) in reference_turn_ranks(model, tokenizer, chat, max_length).items()}


def reference_rsr(turns: dict[int, tuple[int, float, int]]) -> float:
    """A trajectory's rank-surprisal ratio from its turns: token sums, as rsr_cal.py's sample ratio."""
    return sum(r for _, _, r in turns.values()) / max(sum(s for _, s, _ in turns.values()), 1e-12)


def reference_alone(model, tokenizer, chat: list[dict], max_length: int) -> dict[int, tuple[int, float]]:
    """Per assistant turn m: (tokens, NLL sum) of the turn alone: the chat of that one assistant
    message through the template (a ChatML template ends the generation prompt where the content
    starts), scored from its content's first character to the end; turns must not be empty."""
    out = {}
    turns = [m["content"] for m in chat if m["role"] == "assistant"]
    for m, content in enumerate(turns):
        text = tokenizer.apply_chat_template([{"role": "assistant", "content": content}], tokenize=False)
        start = text.rindex(content)  # the turn's own copy: a default system prompt comes before it
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = encoding["input_ids"][:max_length]
        first = next(k for k, (s, _) in enumerate(encoding["offset_mapping"]) if s >= start)
        n, s, _ = _scored(model, ids, first, RANK_CLIP)
        out[m] = (n, s)
    return out


def reference_ifd(history: dict[int, tuple[int, float]], alone: dict[int, tuple[int, float]]) -> float:
    """A trajectory's IFD: the mean over its scored turns of exp(mean NLL given history - mean NLL alone)."""
    ratios = [math.exp(n_sum / n - alone[m][1] / alone[m][0]) for m, (n, n_sum) in history.items()]
    return sum(ratios) / len(ratios)
