"""Switching an installation from its embedded registry to an external one, with messages
already on the topics (issue 13 point 2: before the catalogue, 96 of 153 old messages failed and
57 decoded silently as the wrong type).

A store publishes case events, reporting facts and payment-run events through its embedded
registry; `schemas push` imports every released schema into an external Confluent registry (the
fake) under its catalogue id; the installation is switched to it (NERVENBAHN_SCHEMA_REGISTRY)
and every message already on each topic is replayed twice: by the switched installation's own
consumer, and by confluent-kafka's SchemaRegistryClient + AvroDeserializer pointed at the
external registry. Both decode every message, each as the type its event_type header names.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path

from bus.asyncapi import published_schemas
from bus.consumer import Received
from bus.kafka_settings import KafkaSettings
from bus.registry_http import ConfluentRegistryClient
from bus.registry_push import catalogued, push_schemas
from bus.topics import ensure_topics
from domain import commands
from domain.application.cases import CaseService
from domain.commands import swiss_today
from domain.payments import RecordPayoutAccount, RunPayments
from nervenbahn.container import Container
from schemas.catalogue import load_catalogue
from tests.bus.pipeline import (
    EffectCounter,
    Pipeline,
    open_supported_case,
    pipeline,
    store_settings,
)
from tests.bus.test_registry_served import decode_topic
from tests.bus.waiting import wait_until

from .fake_confluent import running_fake_registry

DATASETS = ("case-events", "case-facts", "payment-orders")
ADMIN = commands.Actor("pay.office", "administrator", "so-canton")
IBAN = "CH9300762011623852957"


class TypeRecorder(EffectCounter):
    """A consumer's effect: per message, its event_type header and the type of the object
    the consumer decoded (any record: case events, facts, payment-run events)."""

    def handle(self, received: Received, tx: sqlite3.Connection) -> None:
        tx.execute("INSERT INTO effects VALUES (?, ?, ?, NULL)",
                   (str(received.event_id), received.event_type,
                    type(received.event).__name__))

    def types(self) -> list[tuple[str, str]]:
        """(event_type header, decoded type) of every message handled."""
        return [(header, decoded) for _, header, decoded, _ in self.rows()]


def test_messages_published_with_the_embedded_registry_replay_through_the_external_one(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        publish_every_dataset(line)
        counts = {name: published(line, name) for name in DATASETS}
        registry = line.container.registry
        embedded = {v.schema_id for s in registry.subjects() for v in registry.versions(s)}

        with running_fake_registry() as (url, _):
            released = [(p.subject, p.version, p.schema) for p in published_schemas(kafka_settings)]
            push_schemas(ConfluentRegistryClient(url), catalogued(released, load_catalogue()))
            outside = {
                name: decode_topic(",".join(kafka_settings.bootstrap_servers),
                                   line.container.topic(name).name, url, "outside-app:key",
                                   counts[name])
                for name in DATASETS
            }
            switched = replay_switched(tmp_path, master_key, kafka_settings, url, line.service,
                                       counts)

    assert embedded <= {entry.schema_id for entry in load_catalogue().entries}
    assert counts["case-events"] == 12
    assert counts["payment-orders"] == 6  # started, 4 orders (2 held), completed
    assert counts["case-facts"] > 0
    for name in DATASETS:
        decoded = outside[name]
        assert len(decoded) == counts[name], name  # 0 errors: every message decoded
        assert [w.rsplit(".", 1)[-1] for _, w, _ in decoded] == [h for h, _, _ in decoded]
        assert all(isinstance(value, dict) and value for _, _, value in decoded)
        types = switched[name].types()
        assert len(types) == counts[name], name
        assert [decoded for _, decoded in types] == [header for header, _ in types]  # 0 wrong


def publish_every_dataset(line: Pipeline) -> None:
    """Four supported cases (12 events), their reporting facts, a payment run over them with
    payout accounts for two (6 events), each relayed to its topic."""
    cases = [open_supported_case(line.service, n) for n in range(4)]
    payments = line.container.payments
    for case_id in cases[:2]:
        payments.record_account(RecordPayoutAccount(
            actor=ADMIN, correlation_id=uuid.uuid4(), case_id=case_id, iban=IBAN,
            holder="N. Beispiel"))
    payments.run(RunPayments(actor=ADMIN, correlation_id=uuid.uuid4(),
                             month=swiss_today().replace(day=1)))
    ensure_topics(line.container.kafka, [line.container.topic(name) for name in DATASETS])
    for name in DATASETS:
        with line.container.relay(name, batch_size=50) as relay:
            relay.run(threading.Event(), until_caught_up=True)


def published(line: Pipeline, name: str) -> int:
    """How many messages the relay of dataset `name` has published."""
    return line.container.relay_status(name).published


def replay_switched(
    tmp_path: Path, master_key: str, kafka: KafkaSettings, registry_url: str,
    service: CaseService, counts: dict[str, int],
) -> dict[str, TypeRecorder]:
    """Every message of each topic through the consumer of the installation switched to the
    registry at `registry_url` (a group of its own, from the beginning)."""
    settings = store_settings(tmp_path, master_key, {"NERVENBAHN_SCHEMA_REGISTRY": registry_url})
    container = Container(settings, kafka=kafka, service=service)
    recorders: dict[str, TypeRecorder] = {}
    try:
        assert isinstance(container.registry, ConfluentRegistryClient)
        for name, expected in counts.items():
            recorders[name] = replay_one(container, name, expected, tmp_path)
    finally:
        container.close()
    return recorders


def replay_one(container: Container, name: str, expected: int, tmp_path: Path) -> TypeRecorder:
    """The topic of dataset `name` read from the beginning by a group of its own."""
    recorder = TypeRecorder(tmp_path / f"switched-{name}.db")
    with container.consumer(name, f"switched-{name}", recorder.handle,
                            recorder.store) as consumer:
        wait_until(lambda: recorder.count() >= expected, step=lambda: consumer.poll_once(200),
                   what=f"{expected} replayed messages of {name}")
    return recorder
