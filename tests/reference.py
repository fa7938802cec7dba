"""The paper's per-turn NLL recipe, written independently of curate's scorer: one forward pass
per assistant turn over the history rendered up to and including that turn, full logits, plain
cross-entropy over that turn's tokens. Tests check `curate score` against it; bench/score.py
times it."""

from __future__ import annotations

import torch


def reference_turns(model, tokenizer, chat: list[dict], max_length: int) -> dict[int, tuple[int, float]]:
    """Per assistant turn m: (tokens, NLL sum) over the tokens that fit in max_length."""
    out = {}
    ends = [i for i, m in enumerate(chat) if m["role"] == "assistant"]
    for m, i in enumerate(ends):
        head = tokenizer.apply_chat_template(chat[:i], tokenize=False, add_generation_prompt=True)
        upto = tokenizer.apply_chat_template(chat[: i + 1], tokenize=False)
        head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
        ids = tokenizer(upto, add_special_tokens=False)["input_ids"]
        assert ids[: len(head_ids)] == head_ids
        ids = ids[:max_length]
        if len(ids) <= len(head_ids):
            continue
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        losses = torch.nn.functional.cross_entropy(
            logits[len(head_ids) - 1 : -1], torch.tensor(ids[len(head_ids) :]), reduction="none"
        )
        out[m] = (len(losses), float(losses.double().sum()))
    return out
