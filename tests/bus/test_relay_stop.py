"""A recorded event that can never be published stops the relay at that event, naming it:
the events before it are published and their position kept, nothing after it is, and the relay
does not retry for ever (a broker outage, by contrast, is retried)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from bus.errors import EncodeError, RelayStoppedError
from bus.kafka_settings import KafkaSettings
from bus.positions_sqlite import SQLitePositionStore
from bus.relay import Relay, case_event_encoder
from tests.bus.pipeline import open_supported_case, pipeline
from tests.bus.waiting import wait_until


def test_an_event_that_cannot_be_encoded_stops_the_relay_at_its_position(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings,
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        open_supported_case(line.service, 1)  # store positions 1-3
        second = open_supported_case(line.service, 2)  # store positions 4-6
        encode = case_event_encoder(line.container.codec("case-events"))

        def encoder(event: Any) -> Any:
            if (event.originator_id, event.originator_version) == (second, 2):  # position 5
                raise EncodeError("amount does not fit the schema")
            return encode(event)

        positions = SQLitePositionStore(tmp_path / "positions.db")
        relay = Relay(service=line.service, encoder=encoder, positions=positions,
                      settings=kafka_settings, topic=line.container.topic("case-events"),
                      name="stopping")
        try:
            with pytest.raises(RelayStoppedError) as stopped:
                relay.run(threading.Event())  # no `until_caught_up`: it would retry for ever
            status = relay.status()
        finally:
            relay.close()
            positions.close()

    assert stopped.value.position == 5
    assert "relay stopping stopped at store position 5" in str(stopped.value)
    assert "amount does not fit the schema" in str(stopped.value)
    assert (status.position, status.published) == (4, 4)  # everything before it, nothing after
    assert _messages(kafka_settings, line.container.topic("case-events").name) == 4


def _messages(kafka: KafkaSettings, topic: str) -> int:
    consumer = KafkaConsumer(**kafka.consumer_kwargs(None, "relay-stop-count"))
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        seen: list[Any] = []
        wait_until(lambda: len(seen) >= 4,
                   step=lambda: seen.extend(r for rs in consumer.poll(300).values() for r in rs),
                   what="the published messages")
        for records in consumer.poll(500).values():  # and nothing more arrives
            seen.extend(records)
        return len(seen)
    finally:
        consumer.close()
