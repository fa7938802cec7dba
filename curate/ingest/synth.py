"""Synthetic teacher runs in the smolagents log format, for the real train questions.

Deterministic by seed: every run draws from its own generator seeded by (seed, source, question,
sample). HotPotQA runs search the web, MATH runs compute with Python; runs take 1-5 steps, some hit
execution errors (and recover), parse errors or the step limit, some fail outright (log_data null),
and now and then a sample repeats an earlier one verbatim, as temperature-1 sampling does. Every
record says `synthetic: true` and its model is `synthetic-teacher`.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from ..shared_data import shared_data_dir

if TYPE_CHECKING:
    import polars as pl

    from ..store import Store
    from .job import IngestSummary

MODEL_ID = "synthetic-teacher"
BUNDLED = 64  # examples per set in curate/assets: the first 64 of the shared file


@dataclass(frozen=True)
class SourceSet:
    """A real question set and how its synthetic runs behave."""

    name: str
    shared_path: str  # under shared/data/questions/
    style: str  # retrieval | code
    accuracy: float  # mean share of correct runs


SOURCES = {
    s.name: s
    for s in (
        SourceSet("hotpotqa", "qa/train/hotpotqa_1000_20250402.json", "retrieval", 0.55),
        SourceSet("math", "math/train/math_1000_20250414.json", "code", 0.65),
        SourceSet("math_medium", "math/train/math_medium_1000_20250430.json", "code", 0.75),
    )
}


@dataclass(frozen=True)
class SynthConfig:
    """What `curate synth` writes; stored beside the output as FILE.synth.json."""

    questions: int
    k: int
    source: str = "hotpotqa"
    seed: int = 0
    log_data_as_string: bool = False  # the Hub's dumps store log_data as a JSON string
    p_failed: float = 0.01  # log_data null
    p_parse_error: float = 0.06
    p_max_steps: float = 0.04
    p_exec_error: float = 0.12
    p_duplicate: float = 0.05  # a verbatim repeat of the previous sample of the question


def load_questions(source: str) -> tuple[list[dict[str, Any]], str]:
    """(examples, where from): the shared set when present, else the bundled first 64."""
    if source not in SOURCES:
        raise ValueError(f"unknown question source {source!r} (known: {', '.join(SOURCES)})")
    shared = shared_data_dir()
    if shared is not None and (path := shared / "questions" / SOURCES[source].shared_path).is_file():
        return json.loads(path.read_text())["examples"], str(path)
    bundled = resources.files("curate") / "assets" / f"{source}_sample.json"
    return json.loads(bundled.read_text())["examples"], f"bundled sample ({BUNDLED} questions)"


SYSTEM_PROMPT = """You are an expert assistant who can solve any task using code blobs. You will be given a task to solve as best you can.
To do so, you have been given access to a list of tools: these tools are basically Python functions which you can call with code.
To solve the task, you must plan forward to proceed in a series of steps, in a cycle of 'Thought:', 'Code:', and 'Observation:' sequences.

At each step, in the 'Thought:' sequence, you should first explain your reasoning towards solving the task and the tools that you want to use.
Then in the 'Code:' sequence, you should write the code in simple Python. The code sequence must end with '<end_code>' sequence.
During each intermediate step, you can use 'print()' to save whatever important information you will then need.
These print outputs will then appear in the 'Observation:' field, which will be available as input for the next step.
In the end you have to return a final answer using the `final_answer` tool.

On top of performing computations in the Python code snippets that you create, you only have access to these tools:
- web_search: Performs a web search for a query and returns the top results as a string.
    Takes inputs: {'query': {'type': 'string', 'description': 'The search query to perform.'}}
    Returns an output of type: string
- final_answer: Provides a final answer to the given problem.
    Takes inputs: {'answer': {'type': 'any', 'description': 'The final answer to the problem'}}
    Returns an output of type: any

Here are the rules you should always follow to solve your task:
1. Always provide a 'Thought:' sequence, and a 'Code:\\n```py' sequence ending with '```<end_code>' sequence, else you will fail.
2. Use only variables that you have defined!
3. Call a tool only when needed, and never re-do a tool call that you previously did with the exact same parameters.
4. Don't name any new variable with the same name as a tool: for instance don't name a variable 'final_answer'.
5. You can use imports in your code, but only from the following list of modules: ['math', 'sympy', 'numpy', 'fractions', 'itertools', 'collections', 're', 'statistics'].
6. Don't give up! You're in charge of solving the task, not providing directions to solve it.

Now Begin! If you solve the task correctly, you will receive a reward of $1,000,000."""

_OPENERS = {
    "retrieval": [
        "I need to find out who or what the question refers to before I can answer it.",
        "This is a multi-hop question, so I will first identify the bridging entity.",
        "Let me search for the main entity mentioned in the question.",
    ],
    "code": [
        "I will set up the problem algebraically and let sympy do the heavy lifting.",
        "Let me translate the problem into equations and solve them with Python.",
        "I can compute this directly; a short script will avoid arithmetic slips.",
    ],
}
_FILLERS = [
    "The observation so far is consistent with my plan.",
    "I should double-check the intermediate result before moving on.",
    "There may be more than one interpretation, so I will keep the most literal one.",
    "The previous step narrowed things down considerably.",
    "I will keep the code short and print only what I need.",
    "Edge cases matter here, so I will verify them explicitly.",
    "Once this is confirmed, the rest should follow quickly.",
]
_PARSE_ERROR = (
    "Error:\nError in code parsing:\nYour code snippet is invalid, because the regex pattern "
    "```(?:py|python)?\\n(.*?)\\n``` was not found in it.\nMake sure to include code with the correct "
    "pattern, for instance:\nThoughts: Your thoughts\nCode:\n```py\n# Your python code here\n```<end_code>\n"
    "Make sure to provide correct code blobs."
)
_RETRY = (
    "Now let's retry: take care not to repeat previous errors! If you have retried several times, "
    "try a completely different approach."
)


def _part(text: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": text}]


class _Run:
    """Builds one run's messages step by step."""

    def __init__(self, rng: random.Random, style: str, question: str) -> None:
        self.rng, self.style, self.calls = rng, style, 0
        self.messages = [
            {"role": "system", "content": _part(SYSTEM_PROMPT)},
            {"role": "user", "content": _part(f"New task:\n{question}")},
        ]
        self.entity = _entity(question)

    def thought(self, first: bool) -> str:
        """A Thought: paragraph of 1-5 sentences (the first step states a plan)."""
        lines = [self.rng.choice(_OPENERS[self.style])] if first else []
        lines += self.rng.sample(_FILLERS, self.rng.randint(0 if first else 1, 4))
        return "Thought: " + " ".join(lines)

    def step(self, code: str, observation: str, first: bool, error: str | None = None) -> None:
        """One code action: assistant, tool-call and tool-response (an observation or an error)."""
        self.calls += 1
        call = f"call_{self.calls}"
        text = f"{self.thought(first)}\nCode:\n```py\n{code}\n```<end_code>"
        self.messages.append({"role": "assistant", "content": _part(text)})
        tool = [{"id": call, "type": "function", "function": {"name": "python_interpreter", "arguments": code}}]
        self.messages.append({"role": "tool-call", "content": _part(f"Calling tools:\n{tool!r}")})
        if error is None:
            body = f"Observation:\nExecution logs:\n{observation}\nLast output from code snippet:\nNone"
        else:
            body = f"Error:\n{error}\n{_RETRY}"
        self.messages.append({"role": "tool-response", "content": _part(f"Call id: {call}\n{body}")})

    def parse_error(self) -> None:
        """An output with no code block, answered by smolagents' parse error."""
        text = f"{self.thought(False)}\nI think I can answer now: the result is what I found above."
        self.messages.append({"role": "assistant", "content": _part(text)})
        self.messages.append({"role": "tool-response", "content": _part(_PARSE_ERROR)})

    def max_steps(self) -> None:
        """The step limit's error after the last step."""
        self.messages.append({"role": "tool-response", "content": _part(f"Error:\nReached max steps.\n{_RETRY}")})

    def work(self, first: bool, found: str | None = None) -> tuple[str, str]:
        """Code and observation of one intermediate step; `found` is what the step turns up."""
        if self.style == "retrieval":
            aspect = self.rng.choice(["history", "founder", "location", "born"])
            query = self.entity if first else f"{self.entity} {aspect}"
            fact = f"Related: {found}." if found else " ".join(self.rng.sample(_FILLERS, 2))
            link = f"https://en.wikipedia.org/wiki/{query.replace(' ', '_')}"
            return (
                f'results = web_search(query="{query}")\nprint(results)',
                f"## Search Results\n\n[{query} - Wikipedia]({link})\n{query} is discussed in several sources. {fact}",
            )
        if found:
            return "result = simplify(expr)\nprint(result)", found
        a, b = self.rng.randint(2, 40), self.rng.randint(2, 40)
        return (
            f"from sympy import symbols, solve, simplify\nx = symbols('x')\nexpr = x**2 - {a + b}*x + {a * b}\n"
            "print(solve(expr, x))",
            f"[{min(a, b)}, {max(a, b)}]" if a != b else f"[{a}]",
        )

    def exec_error(self) -> None:
        """A code action that fails (the run goes on and recovers)."""
        if self.style == "retrieval":
            code, error = "page = visit_webpage(url)\nprint(page)", "NameError: name 'url' is not defined"
        else:
            code, error = "ratio = total / count\nprint(ratio)", "ZeroDivisionError: division by zero"
        line = code.split("\n")[0]
        self.step(code, "", first=False, error=f"Code execution failed at line '{line}' due to: {error}")

    def final(self, answer: str) -> None:
        """The final_answer call and its observation."""
        self.step(f"final_answer({answer!r})", "", first=False)
        self.messages[-1]["content"] = _part(
            f"Call id: call_{self.calls}\nObservation:\nExecution logs:\nLast output from code snippet:\n{answer}"
        )


def _entity(question: str) -> str:
    """A plausible search query: the question's first run of capitalised words (or its start)."""
    found = re.findall(r"(?:[A-Z][\w'.-]+\s?){1,4}", question[1:])
    return (found[0].strip() if found else " ".join(question.split()[:4])).strip(" ?.,")


def _wrong(answer: str, pool: list[dict[str, Any]], rng: random.Random) -> str:
    digits = re.search(r"\d+", answer)
    if digits:
        n = int(digits.group()) + rng.choice([-2, -1, 1, 3])
        return answer[: digits.start()] + str(n) + answer[digits.end() :]
    other = rng.choice(pool)["answer"]
    return other if other != answer else f"not {answer}"


def _record(
    cfg: SynthConfig,
    src: SourceSet,
    example: dict,
    qid: str,
    p_correct: float,
    rng: random.Random,
    pool: list[dict[str, Any]],
) -> dict[str, Any]:
    gold = str(example["answer"])
    head = {
        "question_id": qid,
        "question": example["question"],
        "true_answer": gold,
        "model_id": MODEL_ID,
        "synthetic": True,
    }
    if rng.random() < cfg.p_failed:
        return {
            **head,
            "generated_answer": None,
            "score": 0,
            "cost": None,
            "error": "AgentGenerationError: synthetic generation failure",
            "log_data": None,
        }
    run = _Run(rng, src.style, example["question"])
    max_steps = rng.random() < cfg.p_max_steps
    steps = 5 if max_steps else rng.randint(1, 5)
    trouble = rng.random()
    bad_step = rng.randint(0, steps - 2) if steps > 1 else -1
    correct = rng.random() < (p_correct / 2 if max_steps else p_correct)
    answer = gold if correct else _wrong(gold, pool, rng)
    for i in range(steps - 1):
        if i == bad_step and trouble < cfg.p_parse_error:
            run.parse_error()
        elif i == bad_step and trouble < cfg.p_parse_error + cfg.p_exec_error:
            run.exec_error()
        else:
            run.step(*run.work(i == 0, answer if i == steps - 2 else None), first=i == 0)
    if max_steps:
        run.step(*run.work(False), first=False)
        run.max_steps()
    run.final(answer)
    log_data: Any = {"messages": run.messages}
    if cfg.log_data_as_string:
        log_data = json.dumps(log_data)
    return {
        **head,
        "generated_answer": answer,
        "score": int(correct),
        "cost": round(0.002 * len(run.messages), 4),
        "error": None,
        "log_data": log_data,
    }


def runs(cfg: SynthConfig) -> Iterator[dict[str, Any]]:
    """The records, question by question, K samples each (questions cycle when N exceeds the set)."""
    src = SOURCES[cfg.source]
    pool, _where = load_questions(cfg.source)
    for qi in range(cfg.questions):
        example = pool[qi % len(pool)]
        cycle = qi // len(pool)
        qid = f"{cfg.source}-{example['id']}" + (f"-c{cycle}" if cycle else "")
        qrng = random.Random(f"{cfg.seed}:{cfg.source}:{qi}")
        # Questions differ in difficulty, so some have no correct sample and some have only correct ones.
        p_correct = min(1.0, max(0.0, src.accuracy + qrng.uniform(-0.4, 0.4)))
        previous = None
        for j in range(cfg.k):
            rng = random.Random(f"{cfg.seed}:{cfg.source}:{qi}:{j}")
            if previous is not None and rng.random() < cfg.p_duplicate:
                yield previous
                continue
            previous = _record(cfg, src, example, qid, p_correct, rng, pool)
            yield previous


def _open_out(path: Path) -> BinaryIO | gzip.GzipFile:
    if path.suffix == ".gz":
        return gzip.open(path, "wb")
    if path.suffix == ".zst":
        import zstandard

        return zstandard.ZstdCompressor().stream_writer(open(path, "wb"), closefd=True)
    return open(path, "wb")


def write(cfg: SynthConfig, out: str | Path) -> dict[str, Any]:
    """Write the runs as JSONL and the resolved config beside it; returns that config."""
    from tqdm import tqdm

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _pool, where = load_questions(cfg.source)
    with _open_out(out) as fh:
        for record in tqdm(runs(cfg), total=cfg.questions * cfg.k, desc=f"synth {out.name}", unit=" runs", leave=False):
            fh.write(orjson.dumps(record) + b"\n")
    resolved = {**asdict(cfg), "questions_from": where, "records": cfg.questions * cfg.k, "synthetic": True}
    Path(f"{out}.synth.json").write_text(json.dumps(resolved, indent=2) + "\n")
    return resolved


@dataclass(frozen=True)
class DemoStore:
    """What `demo_store` ingested (a summary per file) and the store's stats afterwards."""

    summaries: list[IngestSummary]
    stats: pl.DataFrame

    def lines(self) -> list[str]:
        """The ingest summaries, then the stats table."""
        from ..stats import stats_table

        return [summary.line() for summary in self.summaries] + [stats_table(self.stats)]


def demo_store(store: Store, folder: str | Path, questions: int = 12, k: int = 4, seed: int = 0) -> DemoStore:
    """Synthesise HotPotQA and MATH runs into folder and ingest them as synth-hotpotqa / synth-math."""
    from ..stats import stats
    from .job import IngestOptions, ingest

    folder = Path(folder)
    summaries: list[IngestSummary] = []
    for source in ("hotpotqa", "math"):
        path = folder / f"synth_{source}.jsonl"
        write(SynthConfig(questions=questions, k=k, source=source, seed=seed), path)
        summaries += ingest(store, [path], f"synth-{source}", "smolagents", IngestOptions(progress=False))
    return DemoStore(summaries, stats(store))
