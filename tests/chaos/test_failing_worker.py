"""A worker of `serve` that keeps failing ends the process with a non-zero exit code, so that a
process manager restarts it (issue 12, item 1) instead of serving frozen data under 200.

The fault: the region read model refuses to record its consumer's offsets (a trigger that
aborts every write to `consumer_offsets`), which no restart of the consumer heals, while
cases keep being recorded. Needs supervision."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest

from tests.chaos.harness import Figures, Installation, wait_for

REFUSE = """
CREATE TRIGGER chaos_refuse_{op} BEFORE {op} ON consumer_offsets
BEGIN SELECT RAISE(ABORT, 'chaos: this read model refuses every write'); END
"""


@pytest.mark.chaos
def test_a_worker_that_keeps_failing_ends_serve_with_a_non_zero_exit_code(
    installation: Installation, figures: Callable[[Figures], Figures]
) -> None:
    server = installation.serve()
    server.start()
    row = Figures("a worker keeps failing: serve exits non-zero",
                  ready_after_s=server.wait_ready())
    with installation.container() as container:
        read_model = container.read_model("region")
    with sqlite3.connect(read_model) as db:
        for op in ("INSERT", "UPDATE"):
            db.execute(REFUSE.format(op=op))
    writer = installation.write(0, 300)
    try:
        code = wait_for(server.process, 120, "serve to exit") if server.process else None
    except AssertionError:
        code = None
    finally:
        writer.kill()
        server.stop()
    row.passed = code == 3  # EXIT_UNAVAILABLE: serve gave the worker up (docs/operations.md)
    row.note = f"serve exit code {code}" if code is not None else "serve still running after 120 s"
    figures(row)
    assert row.passed, row.note
