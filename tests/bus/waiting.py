"""Waiting on a condition with a deadline: the only way these tests wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    within: float = 30.0,
    step: Callable[[], object] | None = None,
    what: str = "condition",
) -> T:
    """Call `step` (e.g. one poll) and check `condition` until it is truthy or `within` passes."""
    deadline = time.monotonic() + within
    while True:
        if step is not None:
            step()
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within} s (last: {result!r})")
        if step is None:
            time.sleep(0.05)  # wait-ok: polling an external condition inside a deadline
