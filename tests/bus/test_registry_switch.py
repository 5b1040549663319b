"""Switching an installation from its embedded registry to an external one, with messages
already on the topic (issue 13 point 2: before the catalogue, 96 of 153 old messages failed and
57 decoded silently as the wrong type).

A store publishes case events through its embedded registry; `schemas push` imports every
released schema into an external Confluent registry (the fake) under its catalogue id; the
installation is switched to it (NERVENBAHN_SCHEMA_REGISTRY) and every message already on the
topic is replayed twice: by the switched installation's own consumer, and by confluent-kafka's
SchemaRegistryClient + AvroDeserializer pointed at the external registry. Both decode every
message, each as the type its event_type header names.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from bus.asyncapi import published_schemas
from bus.consumer import Received
from bus.kafka_settings import KafkaSettings
from bus.registry_http import ConfluentRegistryClient
from bus.registry_push import catalogued, push_schemas
from domain.application.cases import CaseService
from nervenbahn.container import Container
from schemas.catalogue import load_catalogue
from tests.bus.pipeline import EffectCounter, open_supported_case, pipeline, store_settings
from tests.bus.test_registry_served import decode_topic
from tests.bus.waiting import wait_until

from .fake_confluent import running_fake_registry


class TypeRecorder(EffectCounter):
    """An effect counter that also keeps, per message, the event_type header and the type
    of the object the consumer decoded."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.types: list[tuple[str, str]] = []

    def handle(self, received: Received, tx: sqlite3.Connection) -> None:
        super().handle(received, tx)
        self.types.append((received.event_type, type(received.event).__name__))


def test_messages_published_with_the_embedded_registry_replay_through_the_external_one(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        for n in range(4):
            open_supported_case(line.service, n)
        with line.container.relay("case-events", batch_size=50) as relay:
            relay.run(threading.Event(), until_caught_up=True)
        recorded = line.recorded()
        topic = line.container.topic("case-events").name
        registry = line.container.registry
        embedded = {v.schema_id for s in registry.subjects() for v in registry.versions(s)}

        with running_fake_registry() as (url, _):
            released = [(p.subject, p.version, p.schema) for p in published_schemas(kafka_settings)]
            push_schemas(ConfluentRegistryClient(url), catalogued(released, load_catalogue()))
            outside = decode_topic(",".join(kafka_settings.bootstrap_servers), topic, url,
                                   "outside-app:key", len(recorded))
            switched = replay_switched(tmp_path, master_key, kafka_settings, url, line.service,
                                       len(recorded))

    assert embedded <= {entry.schema_id for entry in load_catalogue().entries}
    assert len(outside) == len(recorded) == 12  # 0 errors: every message decoded
    assert [writer.rsplit(".", 1)[-1] for _, writer, _ in outside] == [h for h, _, _ in outside]
    assert all(isinstance(value, dict) and value for _, _, value in outside)
    assert len(switched.types) == len(recorded)
    assert [decoded for _, decoded in switched.types] == [h for h, _ in switched.types]
    assert {(case, version) for _, _, case, version in switched.rows()} == recorded


def replay_switched(
    tmp_path: Path, master_key: str, kafka: KafkaSettings, registry_url: str,
    service: CaseService, expected: int,
) -> TypeRecorder:
    """Every message of the case-events topic through the consumer of the installation
    switched to the registry at `registry_url` (a group of its own, from the beginning)."""
    settings = store_settings(tmp_path, master_key, {"NERVENBAHN_SCHEMA_REGISTRY": registry_url})
    container = Container(settings, kafka=kafka, service=service)
    recorder = TypeRecorder(tmp_path / "switched.db")
    try:
        assert isinstance(container.registry, ConfluentRegistryClient)
        with container.consumer("case-events", "switched", recorder.handle,
                                recorder.store) as consumer:
            wait_until(lambda: recorder.count() >= expected,
                       step=lambda: consumer.poll_once(200), what=f"{expected} replayed events")
    finally:
        container.close()
    return recorder
