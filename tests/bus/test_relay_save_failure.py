"""The relay's position store fails after a batch reached the topic (a PostgreSQL restart
between the broker's acks and the save): the relay retries, and the batch is not sent twice."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from bus.kafka_settings import KafkaSettings
from schemas.postgres import DatabaseUnavailableError
from tests.bus.pipeline import open_supported_case, pipeline
from tests.chaos.harness import read_topic, recorded_ids


class _SaveFailsOnce:
    """The relay's position store, whose first save of a published batch fails."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.failed = 0

    def save(self, name: str, position: Any, lease: Any) -> None:
        if position.published > 0 and not self.failed:
            self.failed += 1
            raise DatabaseUnavailableError("the server closed the connection (a restart)")
        self._store.save(name, position, lease)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_batch_whose_position_was_not_saved_is_not_published_twice(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        for n in range(4):
            open_supported_case(line.service, n)  # 12 events
        with line.container.relay("case-events") as relay:
            positions = _SaveFailsOnce(relay._positions)
            relay._positions = positions
            status = relay.run(threading.Event(), until_caught_up=True, idle_seconds=0.05)
        recorded = recorded_ids(line.service)
        topic = read_topic(line.container)

    assert positions.failed == 1  # the save did fail once, after the batch was acked
    assert status.lag == 0
    assert topic.delivered(recorded) == recorded  # nothing lost
    assert topic.duplicates(recorded) == 0  # and the batch not sent again
