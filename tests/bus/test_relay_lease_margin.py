"""A relay run until caught up does not stop while events wait: when the lease's margin runs out
before a batch's first message (a slow machine), that batch sends nothing, and the run goes on
after renewing the lease instead of ending with events unpublished."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from bus.kafka_settings import KafkaSettings
from bus.positions_sqlite import SQLitePositionStore
from bus.relay import Relay
from tests.bus.pipeline import open_supported_case, pipeline


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _SlowFirstRead:
    """The case service's notification log, whose first read takes longer than the relay's
    lease margin (the clock jumps past it), as on a machine too busy to send in time."""

    def __init__(self, service: Any, clock: _Clock) -> None:
        self._service = service
        self._clock = clock
        self.jumps = 0

    def notifications(self, gt: int, limit: int) -> Any:
        found = self._service.notifications(gt=gt, limit=limit)
        if self.jumps == 0:
            self.jumps += 1
            self._clock.now += 60.0
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)


def test_a_batch_that_sent_nothing_for_the_lease_does_not_end_a_catch_up(
    tmp_path: Path,
    master_key: str,
    kafka_settings: KafkaSettings,
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        open_supported_case(line.service, 1)  # store positions 1-3
        clock = _Clock()
        source = _SlowFirstRead(line.service, clock)
        positions = SQLitePositionStore(tmp_path / "positions.db")
        relay = Relay(
            service=source,
            codec=line.container.codec("case-events"),
            positions=positions,
            settings=kafka_settings,
            topic=line.container.topic("case-events"),
            name="slow",
            monotonic=clock,
        )
        try:
            status = relay.run(threading.Event(), until_caught_up=True)
        finally:
            relay.close()
            positions.close()
    assert source.jumps == 1  # the first batch did run out of lease before sending
    assert (status.position, status.lag, status.published) == (3, 0, 3)
