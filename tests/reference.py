"""The paper's per-turn NLL recipe, written independently of curate's scorer: one forward pass
per assistant turn over the history rendered up to and including that turn, full logits, plain
cross-entropy over that turn's tokens (those that start after the generation prompt: a token the
prompt's last characters share with the turn's first ones is context). Tests check `curate score`
against it; bench/score.py and bench/score_real.py time it."""

from __future__ import annotations

import torch


def reference_turns(model, tokenizer, chat: list[dict], max_length: int) -> dict[int, tuple[int, float]]:
    """Per assistant turn m: (tokens, NLL sum) over the tokens that fit in max_length."""
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
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        losses = torch.nn.functional.cross_entropy(logits[first - 1 : -1], torch.tensor(ids[first:]), reduction="none")
        out[m] = (len(losses), float(losses.double().sum()))
    return out
