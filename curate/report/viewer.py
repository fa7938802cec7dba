"""The report's trajectory viewer: which trajectories it carries, and their supervised tokens with
the NLL the student gives each one, computed for those trajectories only by the scorer's own code.

What it carries (a 1M-trajectory store is reported without reading its text): per data set,
`questions` questions with a trajectory scored in the run, drawn in a seeded hash order
(sql/report/viewer.sql), each with every sample's flags, NLL and rank; token detail for at most
`samples` samples per question: first those a shown selection chose, then the lowest and the
highest NLL in turn. Each question goes into its own script file, loaded when it is picked.

Token NLLs come from `curate.score.renderings` (the one rendering, one pass or one per turn as the
scoring run did) and the transformers backend's `nll`, so each turn's mean is the stored turn
NLL; segments come from the trainer's `label_segments`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from curate import queries

# Segment codes of the viewer (as in a tokenized export): 0 none, 1 reason, 2 action, 3 final.
SEGMENT_CODES = ("none", "reason", "action", "final")
NLL_DECIMALS = 4


@dataclass(frozen=True)
class Student:
    """What recomputes token NLLs: tokenizer, scoring backend, the run's settings."""

    name: str
    tokenizer: Any
    backend: Any
    single_pass: bool
    max_length: int


def load_student(path: Path, dtype: str, max_length: int, device: str = "cpu") -> Student:
    """The scorer's tokenizer and transformers backend for a model folder, with the run's settings."""
    from transformers import AutoTokenizer

    from curate.render import prefix_consistent
    from curate.score import PROBE

    from ..score.nll import TransformersBackend

    tokenizer = AutoTokenizer.from_pretrained(path)
    backend = TransformersBackend(str(path), device=device, dtype=dtype)
    return Student(str(path), tokenizer, backend, prefix_consistent(tokenizer, PROBE), max_length)


def detail_order(samples: pl.DataFrame, chosen: set[str], limit: int) -> list[str]:
    """Which samples of one question get token detail: chosen ones, then lowest and highest NLL in turn."""
    scored = samples.filter(pl.col("nll").is_not_null()).sort("rank")["trajectory_id"].to_list()
    order = [t for t in scored if t in chosen]
    rest = [t for t in scored if t not in chosen]
    while rest:
        order.append(rest.pop(0))
        if rest:
            order.append(rest.pop())
    return order[:limit]


def _pieces(rendering: Any, tokens: Sequence[int]) -> list[str]:
    """The text of each token: from its first character to the next token's (the pieces of all
    tokens concatenate to the rendered text, also where a character spans two byte-level tokens)."""
    starts = [start for start, _ in rendering.offsets] + [len(rendering.text)]
    return [rendering.text[starts[t] : starts[t + 1]] for t in tokens]


def token_turns(student: Student, chats: dict[str, list[dict]], profiles: dict[str, str]) -> dict[str, dict[int, dict]]:
    """Per trajectory, per assistant turn: token pieces, NLLs (None past max_length) and segment codes."""
    from curate.render import TemplateError
    from curate.score import renderings

    from ..render.markers import profile
    from ..render.segments import label_segments

    owners, seqs = [], []
    for tid, chat in chats.items():
        items, _ = renderings(student.tokenizer, chat, student.single_pass)
        for offset, rendering in items:
            owners.append((tid, offset, rendering))
            seqs.append((rendering.input_ids[: student.max_length], rendering.turn[: student.max_length]))
    out: dict[str, dict[int, dict]] = {tid: {} for tid in chats}
    for (tid, offset, rendering), (ids, turn), nll in zip(owners, seqs, student.backend.nll(seqs)):
        values = iter(nll.tolist())
        token_nll = [None] * len(rendering.input_ids)
        for t in range(1, len(ids)):
            if turn[t] >= 0:
                token_nll[t] = round(next(values), NLL_DECIMALS)
        segments = [0] * len(rendering.input_ids)
        if offset == 0 and rendering.n_turns == _assistant_turns(chats[tid]):
            try:
                labelled = label_segments(student.tokenizer, chats[tid], profile(profiles[tid]))
            except TemplateError:
                labelled = None
            if labelled is not None and labelled.input_ids == rendering.input_ids:
                segments = [s + 1 for s in labelled.segments]
        for m in range(rendering.n_turns):
            tokens = [t for t, x in enumerate(rendering.turn) if x == m]
            out[tid][offset + m] = {
                "p": _pieces(rendering, tokens),
                "n": [token_nll[t] for t in tokens],
                "s": [segments[t] for t in tokens],
            }
    return out


def _messages(chat: list[dict], turns: dict[int, dict] | None) -> list[dict]:
    """The chat as the viewer shows it: system, task, assistant turns (tokens or text), observations."""
    shown, turn, users = [], 0, 0
    for message in chat:
        if message["role"] == "assistant":
            entry = {"kind": "assistant", "turn": turn}
            if turns is not None and turn in turns:
                entry["tokens"] = turns[turn]
            else:
                entry["text"] = message["content"]
            turn += 1
        elif message["role"] == "user":
            entry = {"kind": "task" if users == 0 else "observation", "text": message["content"]}
            users += 1
        else:
            entry = {"kind": message["role"], "text": message["content"]}
        shown.append(entry)
    return shown


def _assistant_turns(chat: list[dict]) -> int:
    return sum(m["role"] == "assistant" for m in chat)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


@dataclass(frozen=True)
class Viewer:
    """The viewer's question list (inline in the page) and the files of its questions."""

    index: list[dict]
    files: list[Path]
    detailed: int
    nll_scale: list[float] | None  # [low, high] of the shading
    note: str | None


def build(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    out: Path,
    selection_ids: Sequence[str],
    questions: int,
    samples: int,
    seed: int,
    student: Student | None,
    note: str | None,
) -> Viewer:
    """Draw the questions, score the detailed samples' tokens, write one script file per question."""
    from curate.render import stored_chats

    rows = queries.run(con, "report/viewer", run_id=run_id, n=questions, seed=seed)
    ids = rows["trajectory_id"].to_list()
    chosen = queries.run(con, "report/chosen", selections=list(selection_ids), ids=ids)
    stored = queries.run(con, "report/turns", run_id=run_id, ids=ids)
    stored_turns: dict[str, dict[int, float]] = {}
    for tid, turn, _tokens, mean in stored.iter_rows():
        stored_turns.setdefault(tid, {})[turn] = mean

    groups = rows.partition_by("dataset", "question_id", maintain_order=True)
    detail: list[str] = []
    for group in groups:
        key = (group["dataset"][0], group["question_id"][0])
        picked = set(
            chosen.filter((pl.col("dataset") == key[0]) & (pl.col("question_id") == key[1]))[
                "trajectory_id"
            ].drop_nulls()
        )
        detail += detail_order(group, picked, samples)
    chats = stored_chats(con, detail)
    profiles = dict(rows.select("trajectory_id", "profile").iter_rows())
    tokens = token_turns(student, chats, profiles) if student is not None else {}
    shown_nll = [n for turns in tokens.values() for t in turns.values() for n in t["n"] if n is not None]
    scale = _scale(shown_nll)

    folder = out / "viewer"
    folder.mkdir(parents=True, exist_ok=True)
    index, files = [], []
    for i, group in enumerate(groups):
        dataset, question_id = group["dataset"][0], group["question_id"][0]
        mine = chosen.filter((pl.col("dataset") == dataset) & (pl.col("question_id") == question_id))
        by_selection = {s: {"trajectory_id": t, "reason": r} for _, _, s, t, r in mine.iter_rows()}
        sample_rows = []
        for row in group.drop("question", "gold_answer", "dataset", "question_id").iter_rows(named=True):
            tid = row["trajectory_id"]
            row = {k: _clean(v) for k, v in row.items()}
            row["chosen_by"] = [s for s, c in by_selection.items() if c["trajectory_id"] == tid]
            row["detail"] = tid in chats
            sample_rows.append(row)
        trajectories = {
            tid: {
                "messages": _messages(chats[tid], tokens.get(tid)),
                "stored_turns": [stored_turns.get(tid, {}).get(m) for m in range(_assistant_turns(chats[tid]))],
            }
            for tid in group["trajectory_id"]
            if tid in chats
        }
        payload = {
            "dataset": dataset,
            "question_id": question_id,
            "question": group["question"][0],
            "gold_answer": group["gold_answer"][0],
            "samples": sample_rows,
            "selections": by_selection,
            "trajectories": trajectories,
        }
        name = f"q{i:04d}.js"
        # A script (not JSON fetched at run time): browsers refuse fetch() on file:// pages.
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
        (folder / name).write_text(f"curateViewer.loaded({i}, {text});\n", encoding="utf-8")
        files.append(folder / name)
        index.append(
            {
                "i": i,
                "file": f"viewer/{name}",
                "dataset": dataset,
                "question_id": question_id,
                "question": group["question"][0][:160],
                "samples": group.height,
                "detailed": len(trajectories),
            }
        )
    return Viewer(index, files, len(chats), scale, note)


def _scale(values: list[float]) -> list[float] | None:
    """The NLL range the shading spans: the 5th to the 95th percentile of the shown tokens, so a
    few outliers do not wash the rest out (the legend prints the range)."""
    if not values:
        return None
    ordered = sorted(values)
    low, high = (ordered[int(q * (len(ordered) - 1))] for q in (0.05, 0.95))
    return [round(low, 2), round(max(high, low + 0.01), 2)]
