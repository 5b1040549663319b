"""SIGKILL of `serve` while another process records cases: nothing recorded is lost, the read
models equal a rebuild from the store, and every restart is ready within the bound."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.chaos.harness import READY_WITHIN_S, Figures, Installation, settle, wait_for


@pytest.mark.parametrize(
    ("kills", "cases"),
    [pytest.param(2, 10, id="short"), pytest.param(10, 80, marks=pytest.mark.chaos, id="full")],
)
def test_serve_killed_under_writes_loses_nothing_and_its_read_models_equal_a_rebuild(
    installation: Installation, figures: Callable[[Figures], Figures], kills: int, cases: int
) -> None:
    server = installation.serve()
    server.start()
    ready_after = [server.wait_ready()]
    writer = installation.write(0, cases)
    try:
        for _ in range(kills):
            server.kill()
            server.start()
            ready_after.append(server.wait_ready())
        assert wait_for(writer, 300, "the writer done") == 0
        row = settle(installation, f"SIGKILL serve x{kills} under writes ({cases} cases)")
    finally:
        writer.kill()
        server.stop()
    row.ready_after_s = max(ready_after)
    row.passed = row.lost == 0 and row.read_models_equal and row.ready_after_s < READY_WITHIN_S
    figures(row)
    assert row.events_in == 3 * cases
    assert row.passed, row
