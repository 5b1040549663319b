"""Three `serve` with shared read models (one PostgreSQL schema, one consumer group per read
model): the instance that publishes is SIGKILLed while two writers record cases and the read
models hold some but not all of them, then started again. Once settled nothing is lost, nothing
applied twice, the read models equal a rebuild from the store, and every instance answers
alike (issue 18, "Done when")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bus.broker import EmbeddedBroker
from domain.commands import swiss_today
from tests.bus.waiting import wait_until
from tests.chaos.harness import READY_WITHIN_S
from tests.scale.cluster import Figures, cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CASES = 40
"""Cases per writer (three events each): enough that the kill lands while events flow."""


def test_shared_read_models_lose_nothing_and_apply_nothing_twice_when_an_instance_dies(
    tmp_path: Path, private_broker: EmbeddedBroker, postgres_server_url: str,
    scale_figures: Callable[[Figures], Figures],
) -> None:
    row = Figures("shared read models, publisher killed mid-batch", instances=3)
    with cluster(tmp_path, private_broker, postgres_server_url, "shared") as made:
        victim = wait_until(made.publishing, within=30, what="an instance publishing")
        writers = [made.nodes[0].write(0, CASES), made.nodes[1].write(1000, CASES)]
        held, row.ready_after_s = made.kill_mid_batch(
            victim, writers, made.nodes[0], 6 * CASES // 4, 6 * CASES)
        checks, alike = made.tally(row, swiss_today())
        row.note = f"killed with {held} of {6 * CASES} events applied; " + ", ".join(
            f"{c.name}: {c.expected}" for c in checks)
        scale_figures(row)
    assert row.events_in == 6 * CASES
    assert (row.lost, row.applied_twice) == (0, 0), checks
    assert row.read_models_equal, checks
    assert row.answers_equal, alike
    assert row.ready_after_s < READY_WITHIN_S
