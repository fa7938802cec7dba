"""How torch's OpenMP threads wait between parallel regions: chosen once, before torch is imported.

A decode step is hundreds of small parallel regions. Threads that sleep as soon as they wait
(OMP_WAIT_POLICY=PASSIVE) pay a wake-up at every one: on 2 idle cores SmolLM2's decode steps took
~30% longer than with a short spin first (GOMP_SPINCOUNT=10000: ~80 against ~105 ms a step for one
row, ~155 against ~215 ms for 8 rows). On a CPU that other work keeps busy, spinning threads hold
cores a descheduled thread needs: with one of 2 cores taken, the short spin doubled an 8-row step
(~520 against ~270 ms) and libgomp's default spin (300,000) was worse still. So a short spin where
no other work is running now, sleeping waits where some is. A user's own setting of either
variable is left alone.
"""

from __future__ import annotations

import os
import time

SPIN = "10000"  # libgomp's spins before a waiting thread sleeps: long enough to span a step's gaps between regions
SAMPLES = 3  # reads of the runnable count, 10 ms apart; the fewest counts (a momentary task is not load)
SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")  # the variables chosen here; a user's own either is kept


def others_running() -> int | None:
    """Tasks runnable on this machine now besides this process (the fewest of a few reads, so an idle
    machine answers at the first); None where unknown."""
    fewest = None
    for i in range(SAMPLES):
        if i:
            time.sleep(0.01)
        try:
            with open("/proc/loadavg") as f:
                count = int(f.read().split()[3].split("/")[0]) - 1  # "runnable/total"; this reader is one
        except (OSError, IndexError, ValueError):  # not Linux
            return None
        fewest = count if fewest is None else min(fewest, count)
        if fewest == 0:
            break
    return fewest


def wait_policy(others: int | None) -> dict[str, str]:
    """The OpenMP settings for a machine where `others` tasks are running besides this process (None:
    not known, so the setting that is safe on a busy machine)."""
    return {"GOMP_SPINCOUNT": SPIN} if others == 0 else {"OMP_WAIT_POLICY": "PASSIVE"}


def set_wait_policy() -> None:
    """Set the wait policy in this process's environment (inherited by its children) unless the user set one."""
    if any(name in os.environ for name in SETTINGS):
        return
    os.environ.update(wait_policy(others_running()))


def described() -> str:
    """The wait settings in force, for a benchmark's header."""
    shown = [f"{k}={os.environ[k]}" for k in SETTINGS if k in os.environ]
    return "OpenMP waits: " + (" ".join(shown) or "libgomp's default")
