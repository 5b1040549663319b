"""The broker goes away while cases are recorded and comes back empty on the same port (the
embedded broker keeps its topics in memory, as a Kafka whose disks were lost would): the relays
republish from the store, nothing is lost, the read models equal a rebuild, and `serve` is ready
and caught up again within the bound, without a restart.

A short version (5 s, 12 cases) runs in CI. Before serve supervised its workers, a 5-second
outage once left the branch-office read model at 4 of 12 cases for good, most likely because a
consumer thread that died when the broker went away ("User rebalance callback throws an
error") stayed dead; now it is restarted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from bus.broker import EmbeddedBroker
from tests.bus.waiting import wait_until
from tests.chaos.harness import READY_WITHIN_S, Figures, Installation, settle, wait_for


@pytest.mark.parametrize(("outage_s", "cases"), [
    pytest.param(5.0, 4, id="short"),
    pytest.param(45.0, 40, marks=pytest.mark.chaos, id="full"),
])
def test_broker_down_and_back_empty_loses_nothing_and_serve_recovers(
    installation: Installation, broker: EmbeddedBroker,
    figures: Callable[[Figures], Figures], outage_s: float, cases: int,
) -> None:
    server = installation.serve()
    server.start()
    server.wait_ready()
    try:
        assert wait_for(installation.write(0, cases), 120, "the writes before") == 0
        settle(installation, "before the outage")

        broker.stop()
        down = time.monotonic()
        assert wait_for(installation.write(cases, cases), 120, "the writes during") == 0
        # wait-ok: the outage's length is the scenario itself
        threading.Event().wait(max(0.0, outage_s - (time.monotonic() - down)))
        broker.start()
        back = time.monotonic()

        writer = installation.write(2 * cases, cases)
        wait_until(server.ready, within=READY_WITHIN_S, what="serve ready after the outage")
        assert wait_for(writer, 120, "the writes after") == 0
        row = settle(installation, f"broker down {outage_s:g} s, back empty ({3 * cases} cases)")
        recovered = time.monotonic() - back
        assert server.ready(), "GET /health/ready is not 200 once caught up"
    finally:
        server.stop()
    row.ready_after_s = recovered
    row.passed = row.lost == 0 and row.read_models_equal and recovered < READY_WITHIN_S
    figures(row)
    assert row.passed, row
