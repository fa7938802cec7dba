"""The token columns of `curate export --tokenized`, from the one rendering and the trainer's labels.

`input_ids` is the student's chat-template rendering of the row's `messages` (curate.render.render);
`completion_mask` is 1 exactly on the tokens `curate score` scores and `curate train` trains (each
assistant turn's content and end-of-turn marker); `segments` is 0 on every other token and 1 reason,
2 action, 3 final on those (curate.render.segments). TRL's SFTTrainer takes such rows whatever the
chat template: under `completion_only_loss=True` its labels are -100 exactly where the mask is 0,
and curate.train.trl weights its loss by `segments`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

COLUMNS_DOC = {
    "input_ids": "the student's chat-template rendering of `messages` (token ids)",
    "completion_mask": "1 on the tokens curate scores and trains (assistant content and end-of-turn marker), else 0",
    "segments": "per token: 0 none, 1 reason, 2 action, 3 final (the SmartAD loss segments)",
}


def token_columns(tokenizer: Any, rows: Iterable[tuple[Sequence[dict[str, str]], str]]) -> dict[str, list[list[int]]]:
    """`input_ids`, `completion_mask` and `segments` of (chat, marker profile) rows."""
    from .markers import profile
    from .segments import label_segments

    columns: dict[str, list[list[int]]] = {name: [] for name in COLUMNS_DOC}
    for chat, name in rows:
        labelled = label_segments(tokenizer, chat, profile(name))
        columns["input_ids"].append(labelled.input_ids)
        columns["completion_mask"].append([int(s >= 0) for s in labelled.segments])
        # label_segments: -1 unsupervised, 0 reason, 1 action, 2 final; the column keeps 0 for "none"
        columns["segments"].append([s + 1 for s in labelled.segments])
    return columns
