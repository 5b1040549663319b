"""Forked workers end with the process that forked them (`domain.application.forking`): the
import's workers and chain verification's range processes use it as their pool's initializer.
Killed with SIGKILL, a parent that did not set it left its workers waiting for ever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bus.waiting import wait_until

PARENT = """
import os, signal, sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from domain.application.forking import end_with_parent

def hold(path):
    with open(path, "w") as out:
        out.write(str(os.getpid()))
    signal.pause()  # held until a signal ends it (the kernel's, or the test's SIGKILL)

initializer = end_with_parent if sys.argv[2] == "ends" else None
pool = ProcessPoolExecutor(1, mp_context=get_context("fork"), initializer=initializer,
                           initargs=(os.getpid(),) if initializer else ())
pool.submit(hold, sys.argv[1]).result()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def _worker_of_killed_parent(tmp_path: Path, mode: str) -> int:
    """Start a parent whose forked worker writes its pid and waits; SIGKILL the parent."""
    pid_file = tmp_path / f"worker-{mode}.pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(pid_file), mode])
    wait_until(lambda: (pid_file.exists() and pid_file.read_text())
               or parent.poll() is not None, within=60, what="the worker's start")
    assert parent.poll() is None, "the parent ended early"
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    return int(pid_file.read_text())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl exists on Linux only")
def test_a_worker_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    worker = _worker_of_killed_parent(tmp_path, "ends")
    wait_until(lambda: not _alive(worker), within=30, what=f"worker {worker}'s end")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl exists on Linux only")
def test_without_it_the_worker_outlives_its_killed_parent(tmp_path: Path) -> None:
    """The control: what the initializer prevents does happen without it."""
    worker = _worker_of_killed_parent(tmp_path, "stays")
    try:
        time.sleep(0.5)  # wait-ok: a negative control has no condition to wait on; its window
        assert _alive(worker)
    finally:
        os.kill(worker, signal.SIGKILL)

