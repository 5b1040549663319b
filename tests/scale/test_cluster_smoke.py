"""Three `serve` on one PostgreSQL store with shared read models: all ready, and a case written
to the store is answered alike by every instance (the harness of tests/scale works)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.broker import EmbeddedBroker
from tests.bus.waiting import wait_until
from tests.chaos.harness import wait_for
from tests.scale.cluster import cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_three_instances_share_read_models_and_answer_alike(
    tmp_path: Path, private_broker: EmbeddedBroker, postgres_server_url: str
) -> None:
    with cluster(tmp_path, private_broker, postgres_server_url, "shared") as made:
        writer = made.nodes[0].write(0, 5)
        assert wait_for(writer, 120, "the writer done") == 0
        path = "/v1/regions/so-olten/caseload"
        wait_until(lambda: all(a["by_phase"].get("supported") == 5 for a in made.answers(path)),
                   within=90, what="five supported cases on every instance")
        first, *others = made.answers(path)
        assert all(other == first for other in others)
