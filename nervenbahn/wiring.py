"""Runtime wiring of the bus: which registry, which topics, the relays and consumers.

Built once per process from the settings, beside the case service (see `bootstrap`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bus.broker import EmbeddedBroker
from bus.codec import EventCodec
from bus.consumer import Consumer, Decoder, Handler, RetryPolicy
from bus.effects import EffectStore
from bus.kafka_settings import KafkaSettings
from bus.payments_codec import PaymentEventCodec, payment_event_encoder
from bus.positions import PostgresPositionStore, RelayPositionStore, SQLitePositionStore
from bus.registry import SchemaRegistry
from bus.registry_http import ConfluentRegistryClient
from bus.registry_sql import PostgresSchemaRegistry, SQLiteSchemaRegistry
from bus.relay import Relay
from bus.topics import TopicSpec, catalogue, ensure_topics
from domain.application.cases import CaseService
from domain.application.payments import PaymentService
from nervenbahn.audit.checkpoints import CheckpointCodec, publish_checkpoints
from nervenbahn.audit.database import AuditDatabase
from nervenbahn.config import ConfigError, StoreConfig, load_kafka_settings
from projections.framework import Projection
from projections.reporting_codec import CaseFactCodec, fact_encoder
from projections.reporting_facts import CaseFacts, Pseudonymiser, region_in_store

__all__ = ["Bus", "kafka_or_embedded", "open_bus", "open_registry"]

CASE_EVENTS = "case-events"
CASE_FACTS = "case-facts"
REPORTING_RELAY = "reporting"
AUDIT_CHECKPOINTS = "checkpoints"
PAYMENT_ORDERS = "payment-orders"
PAYMENTS_RELAY = "payments"


def open_registry(store: StoreConfig, url: str | None = None) -> SchemaRegistry:
    """The external registry at `url` (NERVENBAHN_SCHEMA_REGISTRY), else the embedded one."""
    if url:
        return ConfluentRegistryClient(url)
    if store.kind == "sqlite":
        assert store.sqlite_path is not None
        return SQLiteSchemaRegistry(store.sqlite_path)
    return PostgresSchemaRegistry(store.conninfo(), schema=store.schema_name or "public")


def _open_positions(store: StoreConfig) -> RelayPositionStore:
    if store.kind == "sqlite":
        assert store.sqlite_path is not None
        return SQLitePositionStore(store.sqlite_path)
    return PostgresPositionStore(store.conninfo(), store.schema_name)


@dataclass
class Bus:
    """The bus as seen from one process: settings, registry, codec and topics."""

    service: CaseService
    store: StoreConfig
    kafka: KafkaSettings
    registry: SchemaRegistry
    topics: dict[str, TopicSpec]
    feed_codecs: dict[str, Callable[[], Decoder]] = field(default_factory=dict)
    """Codecs of further datasets by name (a relay that adds a topic registers its codec here,
    so that `feed_consumer` can read it)."""
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def case_topic(self) -> TopicSpec:
        """The topic every case event is relayed to."""
        return self.topics[CASE_EVENTS]

    @property
    def reporting_topic(self) -> TopicSpec:
        """The pseudonymised reporting topic: one case fact per case event."""
        return self.topics[CASE_FACTS]

    def fact_codec(self) -> CaseFactCodec:
        """A codec for the reporting topic's case facts."""
        return CaseFactCodec(self.registry, self.reporting_topic.name)

    def codec(self, topic: TopicSpec | None = None) -> EventCodec:
        """A codec for the case-events topic (persons stay sealed)."""
        name = (topic or self.case_topic).name
        return EventCodec(self.registry, name, vault=self.service.vault)

    def relay(self, *, batch_size: int = 500, broker_check_seconds: float = 5.0) -> Relay:
        """The relay of the case-events topic, its position kept in the store's database."""
        positions = _open_positions(self.store)
        self._closers.append(positions.close)
        return Relay(
            service=self.service,
            codec=self.codec(),
            positions=positions,
            settings=self.kafka,
            topic=self.case_topic,
            batch_size=batch_size,
            broker_check_seconds=broker_check_seconds,
        )

    def reporting_relay(
        self,
        reporting_key: SecretStr | None,
        *,
        batch_size: int = 500,
        broker_check_seconds: float = 5.0,
    ) -> Relay:
        """The relay of the reporting topic (`Settings.reporting_key`): a fact per event, key =
        case pseudonym; its own position (`reporting`) beside the case-events relay's."""
        if reporting_key is None:
            raise ConfigError(
                "NERVENBAHN_REPORTING_KEY must be set for a PostgreSQL store (32 random bytes, "
                "base64-encoded; the same for the relay and the reporting projection)"
            )
        pseudonyms = Pseudonymiser(base64.b64decode(reporting_key.get_secret_value()))
        facts = CaseFacts(pseudonyms, region_in_store(self.service))
        positions = _open_positions(self.store)
        self._closers.append(positions.close)
        return Relay(
            service=self.service,
            encoder=fact_encoder(self.fact_codec(), facts),
            positions=positions,
            settings=self.kafka,
            topic=self.reporting_topic,
            name=REPORTING_RELAY,
            batch_size=batch_size,
            broker_check_seconds=broker_check_seconds,
        )

    @property
    def payments_topic(self) -> TopicSpec:
        """The payments topic: every payment run's events, key = run id."""
        return self.topics[PAYMENT_ORDERS]

    def payments_codec(self) -> PaymentEventCodec:
        """A codec for the payments topic (payout accounts stay sealed)."""
        return PaymentEventCodec(self.registry, self.payments_topic.name)

    def payments_relay(
        self, payments: PaymentService, *, batch_size: int = 500, broker_check_seconds: float = 5.0
    ) -> Relay:
        """The relay of the payments topic: it reads the payments store (not the case store),
        key = run id; its own position (`payments`)."""
        positions = _open_positions(self.store)
        self._closers.append(positions.close)
        return Relay(
            service=payments,
            encoder=payment_event_encoder(self.payments_codec()),
            positions=positions,
            settings=self.kafka,
            topic=self.payments_topic,
            name=PAYMENTS_RELAY,
            batch_size=batch_size,
            broker_check_seconds=broker_check_seconds,
        )

    def consumer(
        self, group_id: str, handler: Handler, store: EffectStore, **options: Any
    ) -> Consumer:
        """A consumer of the case-events topic with its own database."""
        return self._consumer(self.case_topic, self.codec(), group_id, handler, store, options)

    def reporting_consumer(
        self, group_id: str, handler: Handler, store: EffectStore, **options: Any
    ) -> Consumer:
        """A consumer of the reporting topic (decoded `CaseFact`s) with its own database."""
        return self._consumer(
            self.reporting_topic, self.fact_codec(), group_id, handler, store, options
        )

    def _consumer(
        self,
        topic: TopicSpec,
        codec: Any,
        group_id: str,
        handler: Handler,
        store: EffectStore,
        options: dict[str, Any],
    ) -> Consumer:
        retry = options.pop("retry", RetryPolicy())
        return Consumer(
            settings=self.kafka,
            group_id=group_id,
            topics=[topic.name],
            codec=codec,
            handler=handler,
            store=store,
            retry=retry,
            **options,
        )

    def feed_codec(self, dataset: str) -> Decoder:
        """The codec of the topic of `dataset` ("case-events", "case-facts", or one registered
        in `feed_codecs`); ConfigError for a dataset the bus does not know."""
        if dataset == CASE_EVENTS:
            return self.codec()
        if dataset == CASE_FACTS:
            return self.fact_codec()
        if dataset in self.feed_codecs and dataset in self.topics:
            return self.feed_codecs[dataset]()
        known = ", ".join(sorted({CASE_EVENTS, CASE_FACTS} | set(self.feed_codecs)))
        raise ConfigError(f"feed {dataset!r}: no such topic on the bus; known: {known}")

    def feed_consumer(
        self, dataset: str, group_id: str, handler: Handler, store: EffectStore, **options: Any
    ) -> Consumer:
        """A consumer of the topic of `dataset` (see `feed_codec`) with its own database."""
        codec = self.feed_codec(dataset)
        return self._consumer(self.topics[dataset], codec, group_id, handler, store, options)

    def projection_consumer(
        self, projection: Projection, store: EffectStore, **options: Any
    ) -> Consumer:
        """The consumer that feeds `projection` from its topic (`Projection.feed`)."""
        subscribe = self.reporting_consumer if projection.feed == CASE_FACTS else self.consumer
        return subscribe(projection.group, projection.handle, store, **options)

    def publish_checkpoints(self, db: AuditDatabase) -> list[int]:
        """Send the store's unpublished signed checkpoints to the audit topic (created if
        missing); the sequences the broker acknowledged."""
        topic = self.topics[AUDIT_CHECKPOINTS]
        ensure_topics(self.kafka, [topic])
        codec = CheckpointCodec(self.registry, topic.name)
        return publish_checkpoints(db, self.kafka, codec, topic)

    def close(self) -> None:
        """Close what this bus opened (not the service)."""
        for close in reversed(self._closers):
            close()
        self._closers.clear()
        self.registry.close()


def open_bus(
    service: CaseService, store: StoreConfig, kafka: KafkaSettings, registry: str | None = None
) -> Bus:
    """Wire the bus for a process."""
    specs = catalogue(kafka, reporting=True, payments=True, audit=True)
    topics = {spec.dataset: spec for spec in specs}  # "case-events": …
    bus = Bus(service, store, kafka, open_registry(store, registry), topics)
    bus.feed_codecs.setdefault(PAYMENT_ORDERS, bus.payments_codec)
    return bus


@contextmanager
def kafka_or_embedded(folder: Path) -> Iterator[KafkaSettings]:
    """NERVENBAHN_KAFKA if set, else an embedded broker (logs in `folder`) while in use."""
    kafka = load_kafka_settings()
    if kafka.bootstrap_servers:
        yield kafka
        return
    with EmbeddedBroker(folder / "broker") as broker:
        yield kafka.with_bootstrap(broker.bootstrap)
