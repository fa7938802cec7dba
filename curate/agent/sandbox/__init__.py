"""The `python` tool: code actions run by smolagents' LocalPythonExecutor (the interpreter the
teacher ran) in killable processes inside a jail, with per-run state.

    with PythonSandbox(Limits(seconds=10), imports=DEFAULT_IMPORTS, tools={"web_search": search}) as sb:
        a, b = sb.open(), sb.open()                       # two runs, fresh state each
        sb.run([(a, "x = 2"), (b, "x = 3")])              # one batch: steps of many runs, in parallel
        [r] = sb.run([(a, "print(x * 10)")])              # r.observation: the release's text
        c = sb.fork(a)                                    # an independent copy of a's state
        sb.release(c)

Threat model. Model-written code, and the code of logs from elsewhere, is hostile, and smolagents'
interpreter is not a security boundary (`sympy.sympify` evaluates Python; numpy loads C
libraries), so the design assumes the code has full Python in its process. The boundary is the
jail (`jail.py`: bubblewrap): an empty environment, a read-only view of the interpreter and its
libraries only, no network, its own PID namespace, a bound on processes and memory. The only way
out is the channel to curate (`channel.py`), which carries length-prefixed JSON of strings and
numbers, bounded in size and checked for shape here; nothing from the jail is ever unpickled. A
malformed or oversized message stops that step with an error, never curate. Every result is
scrubbed of secret values of curate's environment (`scrub.py`) before anything stores it.

Processes. In the jail, a zygote (PID 1 of the jail's namespace, so that code in the jail cannot
kill it) imports smolagents and every authorized module once, applies the limits, and forks one
process per run. A run's state (smolagents' variable dict) lives in its process and nowhere else.
Each step runs in a fresh fork of the run's process, in a session of its own: if the step finishes,
normally or with an error, the fork becomes the run's process; if it runs past the time limit or
dies (a C-level loop, a crash, a malformed message), the run keeps the state it had before the step.
After every step the zygote kills each process of the jail that is neither a run, the zygote, nor
in the session of a step still running: nothing a step starts outlives it. `fork(handle)` is the
same fork without a step: copy-on-write pages make it cheap (self-consistent action generation runs
each candidate in its own fork). Forking per step costs a few milliseconds.

Limits: wall clock per step (the zygote kills the step; a CPU-time rlimit backs it up), memory
(RLIMIT_AS: `memory_mb` over the pre-imported interpreter, so a large allocation raises MemoryError
inside the code), processes (RLIMIT_NPROC, as a uid of the jail's own), printed output (printing
past `output_chars` is an error), imports (smolagents' allow-list, a convenience, not a boundary),
no file contents (RLIMIT_FSIZE 0). `isolation` says what holds. Tools such as `web_search` run in
the parent: the sandboxed code calls them over its channel, so the jail needs neither the network
nor the search index. Workers run with PYTHONHASHSEED=0, so set order and error texts are the same
on every run. Linux only. Where no jail can be made, `unsafe=True` (the CLI's
--unsafe-local-executor) runs the same processes without one, with a clean environment still.

Not covered: a kernel exploit from inside the namespaces, and side channels (timing, shared CPU
caches); runs of one sandbox share its jail and can signal each other's processes.
"""

from .jail import JailUnavailable
from .pool import DEFAULT_IMPORTS, Limits, PythonSandbox
from .results import RETRY, StepResult
from .scrub import Secrets

__all__ = ["DEFAULT_IMPORTS", "RETRY", "JailUnavailable", "Limits", "PythonSandbox", "Secrets", "StepResult"]
