"""The OpenMP wait policy: a short spin on an idle machine, sleeping waits on a busy one, a user's own setting kept."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from curate.engine.cpu.threads import SETTINGS, SPIN, others_running, set_wait_policy, wait_policy

SHOW = (
    "from curate.engine.cpu.threads import set_wait_policy; set_wait_policy(); import os; "
    "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SETTINGS}


@pytest.fixture
def busy():
    """A process that keeps a core busy until the test ends."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.3)  # started and spinning
    yield hog
    hog.kill()
    hog.wait()


def test_the_policy_spins_only_where_nothing_else_runs():
    assert wait_policy(0) == {"GOMP_SPINCOUNT": SPIN}
    assert wait_policy(1) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert wait_policy(5) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert wait_policy(None) == {"OMP_WAIT_POLICY": "PASSIVE"}  # not known: what is safe on a busy machine


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="reads Linux's /proc/loadavg")
def test_a_busy_process_counts_and_makes_waits_sleep(busy):
    assert others_running() >= 1
    shown = subprocess.run([sys.executable, "-c", SHOW], env=_clean_env(), capture_output=True, text=True, check=True)
    assert shown.stdout.split() == ["PASSIVE", "None"]


@pytest.mark.parametrize("setting", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "123"}])
def test_a_users_own_setting_is_left_alone(setting, monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in setting.items():
        monkeypatch.setenv(name, value)
    set_wait_policy()
    assert {k: os.environ.get(k) for k in SETTINGS} == {
        "OMP_WAIT_POLICY": setting.get("OMP_WAIT_POLICY"),
        "GOMP_SPINCOUNT": setting.get("GOMP_SPINCOUNT"),
    }
