"""Command → store → relay → Kafka → consumer, on the real (embedded) broker."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from bus.consumer import Received, Rejected, RetryPolicy, TransientError
from bus.kafka_errors import TopicError
from bus.kafka_settings import KafkaSettings
from bus.positions import RelayPosition
from bus.topics import dead_letter_topic, read_topic, topic_message_counts
from tests.bus.pipeline import EffectCounter, Pipeline, open_supported_case, pipeline
from tests.bus.waiting import wait_until

HEADERS = {
    "event_type",
    "event_id",
    "schema_id",
    "recorded_at",
    "effective_date",
    "correlation_id",
    "causation_id",
    "producer",
    "relay_epoch",
}


@pytest.fixture
def line(tmp_path: Path, master_key: str, kafka_settings: KafkaSettings) -> Pipeline:
    with pipeline(tmp_path, master_key, kafka_settings) as built:
        yield built  # type: ignore[misc]


def relay_all(line: Pipeline) -> None:
    with line.container.relay("case-events", batch_size=50) as relay:
        relay.run(threading.Event(), until_caught_up=True)


def consume_until(line: Pipeline, counter: EffectCounter, count: int, group: str = "g") -> None:
    with line.consumer(group, counter) as consumer:
        wait_until(
            lambda: counter.count() >= count,
            step=lambda: consumer.poll_once(200),
            what=f"{count} effects",
        )


def test_every_recorded_event_takes_effect_once_in_a_consumer(
    line: Pipeline, tmp_path: Path
) -> None:
    cases = [open_supported_case(line.service, n) for n in range(3)]
    counter = EffectCounter(tmp_path / "consumer.db")

    relay_all(line)
    consume_until(line, counter, 9)

    rows = counter.rows()
    assert {(case, version) for _, _, case, version in rows} == line.recorded()
    assert len(rows) == 9
    for case_id in cases:
        in_order = [(version, kind) for _, kind, case, version in rows if case == str(case_id)]
        assert in_order == [(1, "CaseOpened"), (2, "AssessmentCompleted"), (3, "SupportGranted")]


def test_messages_are_keyed_by_case_and_carry_the_headers(
    line: Pipeline, kafka_settings: KafkaSettings
) -> None:
    case_id = open_supported_case(line.service)
    relay_all(line)
    reader = KafkaConsumer(
        line.container.topic("case-events").name, **kafka_settings.consumer_kwargs(group_id=None)
    )
    try:
        messages: list[object] = []
        wait_until(
            lambda: len(messages) >= 3,
            step=lambda: [messages.extend(b) for b in reader.poll(200).values()],
        )
    finally:
        reader.close()

    assert {m.key for m in messages} == {str(case_id).encode()}  # type: ignore[attr-defined]
    for message in messages:
        headers = dict(message.headers)  # type: ignore[attr-defined]
        assert set(headers) >= HEADERS
        assert headers["producer"] == b"nervenbahn-relay"
        assert message.value[0] == 0  # type: ignore[attr-defined]  # Confluent magic byte


def test_relay_lag_is_observable_and_the_position_durable(line: Pipeline) -> None:
    open_supported_case(line.service)
    with line.container.relay("case-events") as relay:
        before = relay.status()
        relay.run(threading.Event(), until_caught_up=True)
    open_supported_case(line.service, 1)
    with line.container.relay("case-events") as restarted:
        between = restarted.status()
        restarted.run(threading.Event(), until_caught_up=True)
        after = restarted.status()

    assert (before.lag, between.lag, after.lag) == (3, 3, 0)
    topic = line.container.topic("case-events").name
    assert topic_message_counts(line.container.kafka, [topic]) == {topic: 6}


def test_a_relay_that_crashed_before_saving_its_position_does_not_publish_again(
    line: Pipeline,
) -> None:
    open_supported_case(line.service)
    relay_all(line)
    # Crashed after the broker took the batch and before its position was saved: the position
    # says nothing was published, the topic holds the three messages.
    with line.container.relay("case-events") as relay:
        epoch = relay._positions.load(relay.name).epoch
        relay._positions.save(relay.name, RelayPosition(0, 0, epoch))
        status = relay.run(threading.Event(), until_caught_up=True)

    topic = line.container.topic("case-events").name
    assert topic_message_counts(line.container.kafka, [topic]) == {topic: 3}
    assert (status.position, status.published) == (3, 3)  # counted as published, not sent


def test_a_duplicate_delivery_has_no_second_effect(
    line: Pipeline, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    open_supported_case(line.service)
    relay_all(line)
    topic = line.container.topic("case-events").name
    # The same messages delivered again (another producer, a replay by hand): byte for byte.
    producer = KafkaProducer(**kafka_settings.producer_kwargs(client_id="again"))
    for record in read_topic(kafka_settings, topic):
        producer.send(topic, key=record.key, value=record.value, headers=record.headers,
                      partition=record.partition).get(30)
    producer.close()
    counter = EffectCounter(tmp_path / "consumer.db")

    with line.consumer("dedup", counter) as consumer:
        wait_until(
            lambda: consumer.lag() == 0 and counter.count() >= 3,
            step=lambda: consumer.poll_once(200),
        )

    assert topic_message_counts(line.container.kafka, [topic]) == {topic: 6}
    assert counter.count() == 3


def test_a_poison_message_is_dead_lettered_and_consumption_goes_on(
    line: Pipeline, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    topic = line.container.topic("case-events").name
    producer = KafkaProducer(**kafka_settings.producer_kwargs(client_id="poison"))
    producer.send(topic, key=b"poison", value=b"\x00\x00\x00\x00\x63not avro at all").get(30)
    producer.close()
    open_supported_case(line.service)
    relay_all(line)
    counter = EffectCounter(tmp_path / "consumer.db")

    consume_until(line, counter, 3, group="poisoned")

    dead = _read_all(kafka_settings, dead_letter_topic(kafka_settings, "poisoned"), 1)
    headers = dict(dead[0].headers)
    assert headers["dlq_reason"] == b"undecodable"
    assert headers["dlq_original"].startswith(topic.encode())
    assert dead[0].value.endswith(b"not avro at all")
    assert counter.count() == 3


def test_a_group_that_cannot_name_its_dead_letter_topic_is_refused_when_the_consumer_is_made(
    line: Pipeline, tmp_path: Path
) -> None:
    counter = EffectCounter(tmp_path / "consumer.db")

    with pytest.raises(TopicError, match="consumer group 'so olten'"):
        line.consumer("so olten", counter)


def test_rejected_events_are_dead_lettered_and_transient_errors_retried(
    line: Pipeline, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    open_supported_case(line.service)
    relay_all(line)
    counter = EffectCounter(tmp_path / "consumer.db")
    failures = {"AssessmentCompleted": 2}

    def handler(received: Received, tx: object) -> None:
        if received.event_type == "SupportGranted":
            raise Rejected("support decisions are not for this consumer")
        if failures.get(received.event_type, 0) > 0:
            failures[received.event_type] -= 1
            raise TransientError("the target system is busy")
        counter.handle(received, tx)  # type: ignore[arg-type]

    consumer = line.container.consumer(
        "case-events",
        "picky",
        handler,
        counter.store,
        retry=RetryPolicy(attempts=3, first_wait=0.01),
        wait=lambda _: None,
    )
    with consumer:
        wait_until(
            lambda: consumer.lag() == 0 and counter.count() >= 2,
            step=lambda: consumer.poll_once(200),
        )

    assert [kind for _, kind, _, _ in counter.rows()] == ["CaseOpened", "AssessmentCompleted"]
    dead = _read_all(kafka_settings, dead_letter_topic(kafka_settings, "picky"), 1)
    assert dict(dead[0].headers)["dlq_reason"] == b"rejected"
    assert b"not for this consumer" in dict(dead[0].headers)["dlq_error"]


def _read_all(kafka: KafkaSettings, topic: str, count: int) -> list:  # type: ignore[type-arg]
    reader = KafkaConsumer(topic, **kafka.consumer_kwargs(group_id=None))
    try:
        messages: list[object] = []
        wait_until(
            lambda: len(messages) >= count,
            step=lambda: [messages.extend(b) for b in reader.poll(200).values()],
            what=f"{count} messages on {topic}",
        )
        return messages
    finally:
        reader.close()
