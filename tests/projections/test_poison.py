"""Poison on the bus never stops a read model: garbage, a genuine message under a forged
`event_id` and an old event re-sent are parked or ignored by every projection's consumer, which
goes on, and each read model stays what a rebuild from the store makes it. Real broker, real
SQLite."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from bus.kafka_settings import KafkaSettings
from bus.topics import dead_letter_topic, topic_message_counts
from domain.reference import load_reference_data
from nervenbahn.synthetic import synthetic_history
from projections import PROJECTIONS, Projection
from projections.framework import open_projection_store, rebuild
from tests.bus.pipeline import Pipeline, open_supported_case, pipeline
from tests.bus.waiting import wait_until

RELAYED = ("case-events", "case-facts")
"""The datasets the projections read: every projection but reporting reads case events."""


@pytest.fixture
def line(tmp_path: Path, master_key: str, kafka_settings: KafkaSettings) -> Iterator[Pipeline]:
    with pipeline(tmp_path, master_key, kafka_settings) as built:
        yield built


def test_garbage_is_dead_lettered_by_every_projections_consumer_which_goes_on(
    line: Pipeline, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    open_supported_case(line.service, 0)
    relay_all(line)
    planted = {name: plant_garbage(line, kafka_settings, name) for name in RELAYED}
    open_supported_case(line.service, 1)  # genuine events after the garbage, in every topic
    relay_all(line)

    fed = feed_all(line, tmp_path)

    for projection in projections(line):
        dead = read_all(kafka_settings, dead_letter_topic(kafka_settings, projection.group),
                        planted[projection.dataset])
        assert {dict(m.headers)["dlq_reason"] for m in dead} == {b"undecodable"}
        assert {dict(m.headers)["dlq_group"] for m in dead} == {projection.group.encode()}
        assert dump(projection, fed[projection.name]) == rebuilt(line, projection, tmp_path)
    with sqlite3.connect(fed["branch_office"]) as db:
        assert db.execute("SELECT count(*) FROM office_cases").fetchone() == (2,)


def test_a_forged_event_id_or_an_old_event_re_sent_leaves_every_read_model_as_rebuilt(
    line: Pipeline, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    records = synthetic_history(load_reference_data(), 15, 7)
    line.service.import_records(json.dumps(r) for r in records)
    relay_all(line)
    feed_all(line, tmp_path)
    forged = 0
    for name in RELAYED:
        topic = line.container.topic(name).name
        early = oldest_of_longest_case(read_all(kafka_settings, topic, count(line, name)))
        headers = [(k, v) for k, v in early.headers if k != "event_id"]
        with producer(kafka_settings) as send:
            send(topic, early.key, early.value, [*headers, ("event_id", b"forged")])
            send(topic, early.key, early.value, [*headers,
                                                 ("event_id", str(uuid.uuid4()).encode())])
            send(topic, early.key, early.value, early.headers)  # the old event, as it was
            send(topic, early.key, early.value, headers)  # and without its id
        forged += 2

    fed = feed_all(line, tmp_path)

    for projection in projections(line):
        assert dump(projection, fed[projection.name]) == rebuilt(line, projection, tmp_path)
        dead = read_all(kafka_settings, dead_letter_topic(kafka_settings, projection.group), 2)
        assert [dict(m.headers)["dlq_reason"] for m in dead] == [b"mismatched-event-id"] * 2


def test_a_message_announcing_another_type_than_it_decodes_to_is_never_applied(
    line: Pipeline, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    open_supported_case(line.service, 0)
    relay_all(line)
    feed_all(line, tmp_path)
    for name in RELAYED:
        topic = line.container.topic(name).name
        genuine = read_all(kafka_settings, topic, count(line, name))[0]
        headers = [(k, v) for k, v in genuine.headers if k != "event_type"]
        with producer(kafka_settings) as send:  # as after a registry switch: id → other type
            send(topic, genuine.key, genuine.value, [*headers, ("event_type", b"CaseClosed")])

    fed = feed_all(line, tmp_path)

    for projection in projections(line):
        assert dump(projection, fed[projection.name]) == rebuilt(line, projection, tmp_path)
        dead = read_all(kafka_settings, dead_letter_topic(kafka_settings, projection.group), 1)
        assert [dict(m.headers)["dlq_reason"] for m in dead] == [b"mismatched-event-type"]


def test_an_event_at_or_below_the_version_a_case_holds_is_ignored(
    line: Pipeline, tmp_path: Path
) -> None:
    open_supported_case(line.service)
    events = [line.service.decode(n) for n in line.service.notifications(gt=0, limit=100)]
    for projection in projections(line, "region", "branch_office"):
        store = open_projection_store(projection, tmp_path / f"{projection.name}.db")
        with store.transaction() as tx:
            for event in events:
                projection.apply(event, tx)
        applied = dump(projection, tmp_path / f"{projection.name}.db")
        with store.transaction() as tx:
            for event in (events[-1], events[1]):  # the newest again, then an old one
                projection.apply(event, tx)
        store.close()

        assert dump(projection, tmp_path / f"{projection.name}.db") == applied
        assert applied == rebuilt(line, projection, tmp_path)


# --- helpers ----------------------------------------------------------------------------------


def projections(line: Pipeline, *names: str) -> list[Projection]:
    """The projections `names` (every one by default), configured as `serve` configures them."""
    return [line.container.projection(name) for name in names or PROJECTIONS]


def relay_all(line: Pipeline) -> None:
    for name in RELAYED:
        with line.container.relay(name) as relay:
            relay.run(threading.Event(), until_caught_up=True)


def count(line: Pipeline, name: str) -> int:
    topic = line.container.topic(name).name
    return topic_message_counts(line.container.kafka, [topic])[topic] or 0


def plant_garbage(line: Pipeline, kafka: KafkaSettings, name: str) -> int:
    """One undecodable message on every partition of the dataset's topic; how many."""
    spec = line.container.topic(name)
    with producer(kafka) as send:
        for partition in range(spec.partitions):
            send(spec.name, b"poison", b"\x00\x00\x00\x00\x63not avro at all", [],
                 partition=partition)
    return spec.partitions


def feed_all(line: Pipeline, tmp_path: Path) -> dict[str, Path]:
    """Run every projection's consumer until it has processed all its topic holds."""
    paths = {name: tmp_path / f"{name}.fed.db" for name in PROJECTIONS}
    for projection in projections(line):
        feed(line, projection, paths[projection.name])
    return paths


def feed(line: Pipeline, projection: Projection, path: Path) -> None:
    store = open_projection_store(projection, path)
    held = count(line, projection.dataset)
    with line.container.projection_consumer(projection, store) as consumer:
        wait_until(
            lambda: sum(m.next_offset for m in store.offsets(projection.group).values()) >= held,
            step=lambda: consumer.poll_once(300),
            what=f"{projection.group}: {held} messages processed",
        )
    store.close()


def rebuilt(line: Pipeline, projection: Projection, tmp_path: Path) -> dict[str, list[Any]]:
    path = tmp_path / f"{projection.name}.rebuilt.db"
    rebuild(projection, line.service, path)
    return dump(projection, path)


def dump(projection: Projection, path: Path) -> dict[str, list[Any]]:
    """Every row of the projection's own tables, sorted."""
    with sqlite3.connect(path) as db:
        return {
            table: sorted(db.execute(f"SELECT * FROM {table}").fetchall())
            for table in projection.tables
        }


def oldest_of_longest_case(messages: list[Any]) -> Any:
    """The second message of the key with the most messages: an event long overtaken."""
    by_key: dict[bytes, list[Any]] = {}
    for message in messages:
        by_key.setdefault(message.key, []).append(message)
    longest = max(by_key.values(), key=len)
    assert len(longest) >= 4
    return sorted(longest, key=lambda m: m.offset)[1]


@contextmanager
def producer(kafka: KafkaSettings) -> Iterator[Callable[..., None]]:
    """`send(topic, key, value, headers, partition=None)` for one block, each message
    acknowledged by the broker before it returns."""
    client = KafkaProducer(**kafka.producer_kwargs(client_id="poisoner"))

    def send(topic: str, key: bytes, value: bytes, headers: list[Any],
             partition: int | None = None) -> None:
        client.send(topic, key=key, value=value, headers=list(headers),
                    partition=partition).get(30)

    try:
        yield send
    finally:
        client.close()


def read_all(kafka: KafkaSettings, topic: str, expected: int) -> list[Any]:
    """The first `expected` messages of `topic` (waits for them with a deadline)."""
    reader = KafkaConsumer(topic, **kafka.consumer_kwargs(group_id=None))
    messages: list[Any] = []
    try:
        wait_until(
            lambda: len(messages) >= expected,
            step=lambda: [messages.extend(b) for b in reader.poll(200).values()],
            what=f"{expected} messages on {topic}",
        )
    finally:
        reader.close()
    return messages
