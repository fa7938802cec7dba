"""The paper's benchmarks by name, and the system prompt a student was trained with.

Names resolve to the question files of the shared data (`../shared/data/questions/`, the
agent-distillation release's test sets); a path resolves to itself. The paper's Table 2 also has
AMC23 and Gaokao, which the shared data does not hold: asking for them by name says so, and a
question file of yours runs by path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

# Table 2's columns in the paper's order (in-domain first), then GSM-hard (in the shared data and in
# the agent-distillation paper, not in Table 2). None: not in the shared data.
BENCHMARKS: dict[str, str | None] = {
    "HotpotQA": "qa/test/hotpotqa_*.json",
    "MuSiQue": "qa/test/musique_*.json",
    "Bamboogle": "qa/test/bamboogle_*.json",
    "2WikiMultiHopQA": "qa/test/2wikimultihopqa_*.json",
    "MATH-500": "math/test/math_500_*.json",
    "AIME": "math/test/aime_*.json",
    "AMC23": None,
    "Gaokao": None,
    "OlymMath": "math/test/olymath_*.json",
    "GSM-hard": "math/test/gsm_hard_*.json",
}
IN_DOMAIN = ("HotpotQA", "MATH-500")
MISSING_NOTE = (
    "AMC23 and Gaokao (in the paper's Table 2) are not in the shared data; pass their question files as paths"
)


@dataclass(frozen=True)
class Benchmark:
    """A benchmark to evaluate: its name (the table's column) and question file."""

    name: str
    path: Path


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def column_order(name: str) -> tuple[int, str]:
    """Sort key of a table column: the paper's benchmarks in its order, then other files by name."""
    names = list(BENCHMARKS)
    return (names.index(name), "") if name in BENCHMARKS else (len(names), name)


def resolve_benchmarks(spec: str) -> list[Benchmark]:
    """Comma-separated names, `all`, or question file paths -> benchmarks, in the paper's column order."""
    found: dict[str, Benchmark] = {}
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        if Path(item).is_file():
            bench = Benchmark(Path(item).stem, Path(item))
            found[bench.name] = bench
            continue
        names = [n for n, p in BENCHMARKS.items() if p] if item.lower() == "all" else [_name(item)]
        for name in names:
            found[name] = Benchmark(name, _shared_file(name))
    if not found:
        raise ValueError("--benchmarks: no benchmark given")
    return sorted(found.values(), key=lambda b: column_order(b.name))


def _name(item: str) -> str:
    by_key = {_key(n): n for n in BENCHMARKS}
    name = by_key.get(_key(item))
    if name is None:
        raise ValueError(
            f"--benchmarks {item}: no such benchmark or file (names: "
            f"{', '.join(n for n, p in BENCHMARKS.items() if p)}, all; or a question file path)"
        )
    if BENCHMARKS[name] is None:
        raise ValueError(f"--benchmarks {item}: {MISSING_NOTE}")
    return name


def _shared_file(name: str) -> Path:
    from ..shared_data import require_shared_data

    pattern = BENCHMARKS[name]
    if pattern is None:  # _name and `all` leave these out before
        raise ValueError(f"--benchmarks {name}: {MISSING_NOTE}")
    folder = require_shared_data() / "questions"
    files = sorted(folder.glob(pattern))
    if not files:
        raise FileNotFoundError(f"--benchmarks {name}: no {pattern} in {folder}")
    return files[-1]


@dataclass(frozen=True)
class TrainedPrompt:
    """The system prompt a student is evaluated with, where it came from, and its trained marker profile."""

    text: str | None  # None: the packaged prompt
    source: str
    profile: str | None = None


def trained_prompt(model: str, adapter: str | None) -> TrainedPrompt:
    """The system prompt the student was trained with, from the adapter's train_config.json (or a merged
    model's, which `curate merge` copies); the packaged prompt where none is recorded."""
    for folder in [Path(adapter)] if adapter else [Path(model).expanduser()]:
        record = folder / "train_config.json"
        if not record.is_file():
            continue
        trained = json.loads(record.read_text())
        data = trained.get("data") or {}
        profiles: dict[str, int] = (data.get("encode") or {}).get("profiles") or {}
        profile = trained.get("config", {}).get("profile") or (
            max(profiles, key=profiles.__getitem__) if profiles else None
        )
        if data.get("system_prompt"):
            return TrainedPrompt(data["system_prompt"], f"trained: {record}", profile)
        return TrainedPrompt(
            None, f"packaged ({record} records no system prompt: trained before curate recorded it)", profile
        )
    return TrainedPrompt(None, "packaged")
