"""Exported rows -> labelled token sequences -> length-grouped micro-batches.

Truncation policy (`--truncation`): a trajectory longer than max_length is either cut at its end
(`end`, the default and the paper's SFT behaviour: every kept token keeps exactly the context it
had) or skipped (`drop`). Cutting the end loses the final answer: the final segment keeps only
the tokens of the last span that survive, and is not moved to an earlier action (that action was
not the trajectory's decision). How many rows were cut and how many of them lost part or all of
their final span is reported in train_config.json (`data.encode`). Keeping the tail instead would
train answers without the task statement, so it is not offered.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.render.markers import profile

from ..render.segments import FINAL, SEGMENTS, UNSUPERVISED, Labelled, label_segments

CHAT_ROLES = ("system", "user", "assistant")
# Rows of exports written before the `profile` column, or of other tools, are smolagents runs.
FALLBACK_PROFILE = "smolagents"


def load_export(path: str) -> tuple[Any, Path | None]:
    """The exported `datasets.Dataset` (save_to_disk folder, parquet file or folder) and its card."""
    from datasets import Dataset, DatasetDict, load_from_disk

    source = Path(path)
    if source.is_file() and source.suffix == ".parquet":
        # `curate export --to FILE.parquet` writes its card beside it as FILE.README.md.
        rows, card = Dataset.from_parquet(str(source)), source.with_suffix(".README.md")
    elif source.is_dir() and ((source / "state.json").is_file() or (source / "dataset_dict.json").is_file()):
        rows, card = load_from_disk(str(source)), source / "README.md"
        if isinstance(rows, DatasetDict):
            if "train" not in rows:
                raise ValueError(f"{path}: a DatasetDict without a `train` split (splits: {', '.join(rows)})")
            rows = rows["train"]
    elif source.is_dir() and (parts := sorted(str(p) for p in source.rglob("*.parquet"))):
        rows, card = Dataset.from_parquet(parts), source / "README.md"
    else:
        raise FileNotFoundError(
            f"--data {path}: not a save_to_disk folder, a parquet file or a folder of parquet files"
        )
    if "messages" not in rows.column_names:
        raise ValueError(f"{path}: no `messages` column (columns: {', '.join(rows.column_names)})")
    return rows, card if card.is_file() else None


def system_prompt(rows: Any) -> dict[str, Any]:
    """The system prompt the rows' conversations open with (the most common one, with how many rows
    open with it and how many distinct ones there are): what the student must see at evaluation."""
    from collections import Counter

    counts = Counter(
        messages[0]["content"]
        for batch in rows.select_columns("messages").iter(batch_size=256)
        for messages in batch["messages"]
        if messages and messages[0].get("role") == "system"
    )
    text, n = counts.most_common(1)[0] if counts else (None, 0)
    return {"system_prompt": text, "system_prompt_rows": n, "system_prompts": len(counts)}


def _chat(messages: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: field `messages` must be a non-empty list of {{role, content}}")
    for j, message in enumerate(messages):
        role, content = (message or {}).get("role"), (message or {}).get("content")
        if role not in CHAT_ROLES:
            raise ValueError(f"{where}: field `messages[{j}].role` is {role!r}; expected system, user or assistant")
        if not isinstance(content, str):
            raise ValueError(f"{where}: field `messages[{j}].content` must be a string, got {type(content).__name__}")
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError(f"{where}: field `messages` has no assistant turn (nothing to train on)")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


@dataclass
class Encoded:
    """Labelled, truncated examples, the export row and marker profile of each, and what encoding dropped or cut."""

    examples: list[Labelled] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def encode(rows: Any, tokenizer: Any, override: str | None, max_length: int, truncation: str, source: str) -> Encoded:
    """Render and label every row under `override` or its own `profile` column, applying the
    truncation policy; bad rows raise naming row and field."""
    from tqdm.auto import tqdm

    out = Encoded()
    stats: dict[str, Any] = dict.fromkeys(
        ("rows", "truncated", "final_cut", "dropped_too_long", "dropped_unsupervised", "tokens"), 0
    )
    stats.update({f"tokens_{s}": 0 for s in SEGMENTS}, profiles={})
    for i, row in enumerate(tqdm(rows, desc="encode", unit="row", leave=False)):
        stats["rows"] += 1
        where = f"{source}: row {i}" + (f" (trajectory_id {row['trajectory_id']})" if "trajectory_id" in row else "")
        name = override or row.get("profile") or FALLBACK_PROFILE
        try:
            markers = profile(name)
        except ValueError as error:
            raise ValueError(f"{where}: field `profile`: {error}") from None
        labelled = label_segments(tokenizer, _chat(row["messages"], where), markers)
        if len(labelled.input_ids) > max_length:
            stats["truncated"] += 1
            stats["final_cut"] += FINAL in labelled.segments[max_length:]
            if truncation == "drop":
                stats["dropped_too_long"] += 1
                continue
            labelled = Labelled(labelled.input_ids[:max_length], labelled.segments[:max_length])
        # Only targets count: the first token is never predicted.
        if all(s == UNSUPERVISED for s in labelled.segments[1:]):
            stats["dropped_unsupervised"] += 1
            continue
        out.examples.append(labelled)
        out.rows.append(i)
        out.profiles.append(name)
        stats["profiles"][name] = stats["profiles"].get(name, 0) + 1
        stats["tokens"] += len(labelled.input_ids)
        for s, name in enumerate(SEGMENTS):
            stats[f"tokens_{name}"] += labelled.segments[1:].count(s)
    out.stats = stats
    if not out.examples:
        raise ValueError(f"{source}: no trainable rows ({stats})")
    return out


def epoch_batches(lengths: list[int], micro: int, seed: int, epoch: int, world: int) -> list[list[int]]:
    """All ranks' micro-batches of one epoch, in order; rank r takes every world-th one.

    Seeded shuffle, then length-sorted within megabatches of 16 micro-batches so a micro-batch
    pads little; the list is padded by repeating its head to a multiple of the world size (as
    DistributedSampler does) so every rank runs the same number of steps.
    """
    order = random.Random(f"{seed}/{epoch}").sample(range(len(lengths)), len(lengths))
    mega = 16 * micro
    batches: list[list[int]] = []
    for k in range(0, len(order), mega):
        group = sorted(order[k : k + mega], key=lambda i: -lengths[i])
        batches += [group[j : j + micro] for j in range(0, len(group), micro)]
    return batches + batches[: -len(batches) % world]


def collate(examples: list[Labelled], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors: input_ids, segments (-1 on padding), attention_mask (None when unpadded)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    segments = torch.full((len(examples), width), UNSUPERVISED, dtype=torch.long)
    for b, e in enumerate(examples):
        ids[b, : len(e.input_ids)] = torch.tensor(e.input_ids)
        segments[b, : len(e.segments)] = torch.tensor(e.segments)
    padded = any(len(e.input_ids) < width for e in examples)
    mask = (torch.arange(width) < torch.tensor([[len(e.input_ids)] for e in examples])).long() if padded else None
    return {"input_ids": ids, "segments": segments, "attention_mask": mask}
