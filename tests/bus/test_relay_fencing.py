"""Two relays on one store: exactly one publishes (it holds the relay's lease), the other
waits as a hot standby and takes over when the first stops — within the lease's time when
the first dies without letting go — and the topic holds every event exactly once, in one
epoch. A relay whose lease was taken cannot move the position: at most the one batch it had
begun reaches the topic a second time, with the same event ids.

Before the lease, two relays on one store published 46–76 % duplicates and stamped two epochs
into every partition."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bus.kafka_settings import KafkaSettings
from bus.positions_postgres import PostgresPositionStore
from bus.positions_sqlite import SQLitePositionStore
from bus.relay import Relay, case_event_encoder
from nervenbahn.config import StoreConfig
from tests.bus.pipeline import Pipeline, open_supported_case, pipeline, topic_contents
from tests.bus.waiting import wait_until

LEASE_SECONDS = 2.0
RENEW_SECONDS = 0.5
LEASE = {"NERVENBAHN_RELAY_LEASE_SECONDS": str(LEASE_SECONDS),
         "NERVENBAHN_RELAY_RENEW_SECONDS": str(RENEW_SECONDS)}
TAKEOVER_MARGIN = 1.5
"""A standby tries the lease every second at most: it takes over within the lease + 1 s."""


@contextmanager
def running(relay: Relay) -> Iterator[threading.Event]:
    """The relay running in a thread until the event it yields is set (no release: a stop
    like a crash, the lease left to run out; the test closes the relay to let it go)."""
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), name=f"relay-{relay.holder_id}")
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=30)


def _exactly_one_publishes_and_the_standby_takes_over(line: Pipeline, relays: list[Relay]) -> float:
    """Run both; check one publishes each event once; stop the active one without releasing
    its lease, record more, and check the standby publishes them, still once each, in the
    same epoch. Returns the time the standby took to take over."""
    topic = line.container.topic("case-events").name
    for n in range(3):
        open_supported_case(line.service, n)
    with running(relays[0]) as first_stop, running(relays[1]):
        wait_until(lambda: any(r.active for r in relays) and relays[0].status().lag == 0,
                   what="the relays caught up")
        active = [r for r in relays if r.active]
        assert len(active) == 1
        standby = next(r for r in relays if r is not active[0])
        assert standby.status().role == "standby" and active[0].status().role == "active"
        assert standby.status().holder == active[0].holder_id
        ids, epochs = topic_contents(line.container.kafka, topic)
        assert len(ids) == 9 and set(ids.values()) == {1} and len(epochs) == 1

        # The active relay dies (no release); the standby waits for its lease to run out.
        active_stop = first_stop if active[0] is relays[0] else None
        if active_stop is None:
            pytest.fail("the first relay started is expected to win the lease")
        active_stop.set()
        stopped_at = time.monotonic()
        for n in range(3, 5):
            open_supported_case(line.service, n)
        wait_until(lambda: standby.active, within=LEASE_SECONDS + 10, step=None,
                   what="the standby taking over")
        takeover = time.monotonic() - stopped_at
        wait_until(lambda: standby.status().lag == 0, what="the standby caught up")

    ids, more_epochs = topic_contents(line.container.kafka, topic)
    assert len(ids) == 15 and set(ids.values()) == {1}  # no event twice
    assert more_epochs == epochs  # taking over started no new epoch
    assert LEASE_SECONDS - RENEW_SECONDS - 0.3 <= takeover <= LEASE_SECONDS + TAKEOVER_MARGIN
    return takeover


def test_two_relays_on_one_sqlite_store_publish_each_event_once(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings, LEASE) as line:
        relays = [line.container.relay("case-events", batch_size=2) for _ in range(2)]
        # the first must hold the lease before the second looks (so we know which to stop)
        assert relays[0].hold_lease() and not relays[1].hold_lease()
        takeover = _exactly_one_publishes_and_the_standby_takes_over(line, relays)
        for relay in relays:
            relay.close()
    print(f"takeover after the active relay died: {takeover:.2f} s (lease {LEASE_SECONDS} s)")


@pytest.mark.postgres
def test_two_relays_with_positions_in_postgres_publish_each_event_once(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings, postgres_dsn: str
) -> None:
    store = StoreConfig.parse(postgres_dsn)
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        encoder = case_event_encoder(line.container.codec("case-events"))
        stores = [PostgresPositionStore(store.conninfo(), store.schema_name) for _ in range(2)]
        relays = [
            Relay(service=line.service, encoder=encoder, positions=positions,
                  settings=kafka_settings, topic=line.container.topic("case-events"),
                  batch_size=2, lease_seconds=LEASE_SECONDS, renew_seconds=RENEW_SECONDS)
            for positions in stores
        ]
        try:
            assert relays[0].hold_lease() and not relays[1].hold_lease()
            takeover = _exactly_one_publishes_and_the_standby_takes_over(line, relays)
        finally:
            for relay, positions in zip(relays, stores, strict=True):
                relay.close()
                positions.close()
    print(f"takeover (PostgreSQL) after the active relay died: {takeover:.2f} s")


def test_a_released_lease_is_taken_over_at_once(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings, {
        "NERVENBAHN_RELAY_LEASE_SECONDS": "30"
    }) as line:
        first, second = (line.container.relay("case-events") for _ in range(2))
        assert first.hold_lease() and not second.hold_lease()
        first.close()  # a clean stop lets go
        assert second.hold_lease()


def test_a_relay_whose_lease_was_taken_cannot_advance_the_position(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    frozen = 0.0  # the paused relay's clock: it does not notice the time its lease ran out
    # Its lease (by the store's clock) must outlast its first batch, connecting included, on a
    # busy machine: at 0.6 s a CI run saw it expire before the batch's position was written.
    short = 3.0
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        encoder = case_event_encoder(line.container.codec("case-events"))
        stores = [SQLitePositionStore(tmp_path / "store.db") for _ in range(2)]
        paused, other = (
            Relay(service=line.service, encoder=encoder, positions=positions,
                  settings=kafka_settings, topic=line.container.topic("case-events"),
                  name="fenced", lease_seconds=lease, renew_seconds=lease / 3,
                  monotonic=clock)
            for positions, lease, clock in ((stores[0], short, lambda: frozen),
                                            (stores[1], 30.0, time.monotonic))
        )
        try:
            open_supported_case(line.service, 0)
            assert paused.publish_next() == 3
            assert other.publish_next() == 0 and not other.active  # standby

            open_supported_case(line.service, 1)
            wait_until(other.hold_lease, within=short + 10,
                       what="the lease running out")  # taken over
            assert other.publish_next() == 3
            taken_at = stores[1].load("fenced")

            open_supported_case(line.service, 2)
            # The paused relay wakes up sure of its lease: its batch goes out, its position
            # does not, and it is standby from now on.
            assert paused.publish_next() == 0
            assert not paused.active and stores[0].load("fenced") == taken_at
            assert paused.publish_next() == 0  # no further batch

            assert other.publish_next() == 3
            assert other.status().position == 9
        finally:
            for relay, positions in zip((paused, other), stores, strict=True):
                relay.close()
                positions.close()

        ids, epochs = topic_contents(kafka_settings, line.container.topic("case-events").name)
    assert len(ids) == 9 and len(epochs) == 1
    assert sorted(ids.values()) == [1] * 6 + [2] * 3  # the one stale batch, same event ids
