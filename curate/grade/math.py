"""Math grading: math-verify (gold first: `verify` is not symmetric) in worker processes that are
killed past a hard time limit, so a pathological answer ends as a not-correct grade with a reason.

math-verify's own timeouts use SIGALRM, which only works in a main thread and cannot interrupt a
long C-level sympy call; a pebble process pool gives each pair a wall-clock limit and replaces a
worker it had to kill. pebble gives up on the whole pool when a worker ends abnormally with no task
running (killed while idle, or failing at start), and refuses every later task; such a pool is
replaced, and the pairs it lost are verified once more on the new one.

Ctrl-C reaches every process of the terminal's group. Workers start with SIGINT blocked (a spawned
process inherits the signal mask; pebble ignores SIGINT in them once they run): one still importing
died of it, with a traceback on curate's stderr, and broke the pool. curate stops its workers itself.
"""

from __future__ import annotations

import atexit
import re
import resource
import signal
from collections.abc import Sequence
from concurrent.futures import Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import SpawnContext, SpawnProcess

from pebble import ProcessPool
from pebble.common import ProcessExpired

# Answers holding one of these are parsed as they are (math-verify reads a \boxed{} first).
_DELIMITERS = ("\\boxed", "$", "\\(", "\\[")
# A word of 3+ letters not written as a LaTeX command marks a sentence ("The answer is 4"), which
# must not be read as one LaTeX product of letters; these are the words bare math uses.
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
# Function and constant names of plain (sympy-printed) math, spelled with a backslash in LaTeX.
_LATEX_NAMES = (
    "sin",
    "cos",
    "tan",
    "cot",
    "sec",
    "csc",
    "log",
    "ln",
    "exp",
    "pi",
    "alpha",
    "beta",
    "gamma",
    "delta",
    "theta",
    "lambda",
    "sigma",
    "omega",
    "phi",
    "psi",
)
_MATH_WORDS = {*_LATEX_NAMES, "sqrt", "inf", "infty", "infinity"}
# sympy's log is the natural one (LaTeX \log is base 10 to latex2sympy); oo is sympy's infinity.
_LATEX_SPELLING = {"log": "\\ln", "oo": "\\infty", "inf": "\\infty", "infinity": "\\infty"}
_SYMPY_WORDS = re.compile(rf"(?<![A-Za-z\\])({'|'.join([*_LATEX_NAMES, *_LATEX_SPELLING])})(?![A-Za-z])")
WORKER_MEMORY = 4 << 30  # address-space limit of a worker: a runaway sympy expansion fails, not the machine
SOFT_TIMEOUT = 5  # seconds, math-verify's own per-parse and per-comparison limit inside a worker

CACHE_SIZE = 200_000  # verdicts remembered per process
POLL_SECONDS = 0.5  # how often a wait for verdicts checks that the pool still works

Pair = tuple[tuple[str, ...], str]

_pools: dict[int, ProcessPool] = {}
_verdicts: dict[tuple[tuple[str, ...], str], tuple[bool, str]] = {}


def _is_sentence(answer: str) -> bool:
    return any(w.group().lower() not in _MATH_WORDS for w in _WORD.finditer(answer))


class _SoftTimeout(Exception):
    """math-verify's own (signal) timeout hit while parsing or comparing."""


def _parse(text: str, **options: object) -> list:
    from math_verify import parse
    from math_verify.errors import TimeoutException

    try:
        return parse(text, parsing_timeout=SOFT_TIMEOUT, raise_on_error=True, **options)
    except TimeoutException:
        raise _SoftTimeout(f"parsing took over {SOFT_TIMEOUT} s") from None
    except Exception:  # noqa: BLE001 - text math-verify cannot read has no reading
        return []


def _equal(gold: list, reading: list) -> bool:
    from math_verify import verify
    from math_verify.errors import TimeoutException

    try:
        return verify(gold, reading, timeout_seconds=SOFT_TIMEOUT, raise_on_error=True)
    except TimeoutException:
        raise _SoftTimeout(f"comparing took over {SOFT_TIMEOUT} s") from None
    except Exception:  # noqa: BLE001 - objects sympy cannot compare are not equal
        return False


def _parse_gold(gold: str) -> list:
    return _parse(gold if any(d in gold for d in _DELIMITERS) else f"${gold}$")


def _reading(answer: str) -> list:
    """The answer as math-verify reads it: [sympy object, matched text], or [] when nothing is found."""
    answer = answer.replace("\\$", "")  # an escaped dollar is currency, not a math delimiter
    if any(d in answer for d in _DELIMITERS) or _is_sentence(answer):
        return _parse(answer)
    if "\\" in answer:  # bare LaTeX ("(-\infty, 8]", "\frac{1}{2}")
        return _parse(f"${answer}$", fallback_mode="no_fallback")
    # Bare plain text ("p - q", "pi/2", "4*sqrt(15)"): as LaTeX with sympy spellings fixed; only when
    # that reads nothing, as text (whose number search would take the 4 of "4*sin(t)" as the answer).
    return _parse(f"${_sympy_to_latex(answer)}$", fallback_mode="no_fallback") or _parse(answer)


def _sympy_to_latex(answer: str) -> str:
    """Python/sympy spellings LaTeX reads differently (`pi` would be p*i, `**` is not a power)."""
    answer = answer.replace("**", "^")
    return _SYMPY_WORDS.sub(lambda m: _LATEX_SPELLING.get(m.group(), "\\" + m.group()), answer)


def verify_pair(golds: tuple[str, ...], answer: str) -> tuple[bool, str]:
    """(correct, explanation) for one answer against gold aliases; runs inside a worker process."""
    try:
        reading = _reading(answer)
        if not reading:
            return False, "math-verify: no answer could be extracted"
        parsed_golds = [(g, p) for g in golds if (p := _parse_gold(g))]
        if not parsed_golds:
            return False, "math-verify: the gold answer could not be parsed"
        shown = str(reading[0])[:200]
        for gold, gold_parsed in parsed_golds:
            if _equal(gold_parsed, reading):
                return True, f"math-verify: {shown} = {gold}"
    except _SoftTimeout as error:
        return False, f"math-verify: {error}"
    return False, f"math-verify: {shown} != {golds[0]}"


def _start_worker() -> None:
    import logging

    # Timeouts and parse failures become grade explanations; math-verify's own log lines are noise.
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    # A hard limit below ours cannot be raised (the attempt failed every worker's start).
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = WORKER_MEMORY if hard == resource.RLIM_INFINITY else min(WORKER_MEMORY, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    # Load math-verify and sympy now (about a second, far more on a loaded machine), so that a pair's
    # time limit is spent on the pair, not on the first pair's imports.
    verify_pair(("1",), "1")


class _WorkerProcess(SpawnProcess):
    """A spawned worker that is started with SIGINT blocked (see the module docstring)."""

    def start(self) -> None:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class _WorkerContext(SpawnContext):
    # spawn: the caller may hold threads (torch, a DuckDB connection) that fork would copy mid-state.
    Process = _WorkerProcess


def _pool(workers: int) -> ProcessPool:
    """A pool kept for the life of the process (workers import sympy once, about a second each);
    a broken one is replaced."""
    pool = _pools.get(workers)
    if pool is not None and not pool.active:
        _discard(workers)
        pool = None
    if pool is None:
        pool = _pools[workers] = ProcessPool(max_workers=workers, initializer=_start_worker, context=_WorkerContext())
    return pool


def _discard(workers: int) -> None:
    pool = _pools.pop(workers)
    pool.stop()
    pool.join()


def shutdown() -> None:
    """Stop the worker pools and wait for their workers to end."""
    while _pools:
        _discard(next(iter(_pools)))


@atexit.register
def _stop_at_exit() -> None:
    # Stopped, not joined: a pool that Ctrl-C interrupted in the middle of its bookkeeping may never
    # join (curate once waited at exit on a task thread that missed the stop). Its threads are daemons;
    # pebble's own exit hook, registered before this one and so run after it, kills its workers.
    for pool in _pools.values():
        pool.stop()


def verify_all(pairs: Sequence[Pair], workers: int, timeout: float) -> list[tuple[bool, str]]:
    """(correct, explanation) for each (gold aliases, answer) pair. A pair is verified once per
    process (many runs of a question give the same answer), and never longer than `timeout` seconds."""
    todo = [pair for pair in dict.fromkeys(pairs) if pair not in _verdicts]
    if len(_verdicts) + len(todo) > CACHE_SIZE:
        _verdicts.clear()
    lost = _verify(todo, workers, timeout)
    if lost:
        lost = _verify(lost, workers, timeout)
    if lost:
        raise RuntimeError(
            f"math grading: the math-verify worker pool broke twice in a row ({len(lost)} answers "
            "not graded); run the same command again"
        )
    return [_verdicts[pair] for pair in pairs]


def _verify(todo: list[Pair], workers: int, timeout: float) -> list[Pair]:
    """Verify pairs into the verdict cache; the pairs lost to a broken pool (which is then discarded)."""
    if not todo:
        return []
    pool = _pool(workers)
    try:
        futures = [pool.schedule(verify_pair, args=pair, timeout=timeout) for pair in todo]
    except RuntimeError:  # broken since `_pool` looked
        _discard(workers)
        return todo
    _settle(pool, futures)
    lost = []
    for pair, future in zip(todo, futures):
        if _lost(future):
            lost.append(pair)
        else:
            _verdicts[pair] = _verdict(future, timeout)
    if lost:
        _discard(workers)
    return lost


def _settle(pool: ProcessPool, futures: Sequence[Future]) -> None:
    """Wait until every future is done or the pool is broken (a task it took then may never end)."""
    pending = set(futures)
    while pending and pool.active:
        _, pending = wait(pending, timeout=POLL_SECONDS)


def _lost(future: Future) -> bool:
    return not future.done() or isinstance(future.exception(), BrokenProcessPool)


def _verdict(future: Future, timeout: float) -> tuple[bool, str]:
    """The (correct, explanation) a finished future holds; a failure of its pair is that pair's reason."""
    try:
        return future.result()
    except FutureTimeout:
        return False, f"math-verify: timed out after {timeout:g} s (worker killed)"
    except ProcessExpired as error:
        return False, f"math-verify: worker died ({error})"
    except MemoryError:
        return False, f"math-verify: over the {WORKER_MEMORY >> 30} GiB worker memory limit"
    except Exception as error:  # noqa: BLE001 - any failure of one pair is that pair's reason
        return False, f"math-verify: {type(error).__name__}: {error}"[:300]
