"""The embedded broker dies with the process that started it, even a SIGKILLed one (issue 12,
finding 7: a SIGKILLed `serve` left its broker running as an orphan). Linux only: elsewhere
there is no way to ask for it (see bus/broker.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bus.waiting import wait_until
from tests.conftest import BROKER_DEADLINE_S

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="PR_SET_PDEATHSIG exists on Linux only")

PARENT = r'''
import sys, threading
from pathlib import Path
from bus.broker import EmbeddedBroker

broker = EmbeddedBroker(Path(sys.argv[1]), start_timeout=float(sys.argv[2]))
broker.start()
print(broker.pid, flush=True)
threading.Event().wait()
'''


def _gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie not yet reaped by its new parent has exited too)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state in {"Z", "X"}


def test_a_sigkilled_parent_leaves_no_broker_behind(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "broker"), str(BROKER_DEADLINE_S)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )
    broker_pid = 0
    try:
        assert parent.stdout is not None
        broker_pid = int(parent.stdout.readline())  # the parent prints it once the broker answers
        assert not _gone(broker_pid)

        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=BROKER_DEADLINE_S)

        wait_until(lambda: _gone(broker_pid), within=BROKER_DEADLINE_S,
                   what=f"the end of the orphaned broker {broker_pid}")
    finally:
        parent.kill()
        parent.wait()
        if broker_pid and not _gone(broker_pid):
            os.kill(broker_pid, signal.SIGKILL)  # never leave one behind, whatever failed
