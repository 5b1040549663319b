"""Two `serve` processes on one store (a second one started by mistake, or a hot standby):
the second must not publish what the first already did, and no consumer may rewind for ever
(issue 12, finding 3 and a "Done when"). Needs the relay's lease or fencing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.chaos.harness import READY_WITHIN_S, Figures, Installation, settle, wait_for


@pytest.mark.chaos
def test_two_serves_on_one_store_publish_no_duplicate_and_read_models_equal_a_rebuild(
    installation: Installation, figures: Callable[[Figures], Figures]
) -> None:
    first, second = installation.serve("serve-1"), installation.serve("serve-2")
    row, ready_after = Figures("two serve on one store"), None
    try:
        first.start()
        second.start()  # both start fresh, at the same time: the worst case
        ready_after = max(first.wait_ready(), second.wait_ready())
        writers = [installation.write(0, 30), installation.write(1000, 30)]
        assert all(wait_for(w, 300, "the writers done") == 0 for w in writers)
        second.kill()  # the standby's peer dies: the first goes on alone
        row = settle(installation, "two serve on one store (60 cases)")
        assert first.ready(), "GET /health/ready of the survivor is not 200"
    finally:
        first.stop()
        second.stop()
        row.ready_after_s = ready_after
        row.passed = (row.lost == 0 and row.duplicated == 0 and row.read_models_equal
                      and (row.ready_after_s or READY_WITHIN_S) < READY_WITHIN_S)
        figures(row)
    assert row.passed, row
