"""Forked worker processes that end with the process that forked them.

A `ProcessPoolExecutor` worker waits on its call queue for work; if the process that forked it
is killed (SIGKILL, the OOM killer), the workers inherited the queue's other end and never see
it close, so they wait forever, each holding a copy of what it was given (the import's lines, a
store connection). Seen with the import's workers (tests/storage/
test_import_on_all_cores_attacks.py); chain verification forks the same way.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = ["end_with_parent"]

_PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal this process gets when its parent ends."""


def end_with_parent(parent: int) -> None:
    """Call first in a forked worker: the kernel kills it when `parent` (the process that
    forked it, its pid taken before the fork) ends, however it ends. Linux only (prctl);
    elsewhere nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before the above took effect
        os._exit(1)
