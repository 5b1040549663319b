"""The composition root: every part of a nervenbahn process, built from `Settings` on first use
and closed once.

The CLI (`nervenbahn.cli`), the API server (`nervenbahn serve`, `nervenbahn.serve.Server`), the
demo and the benchmarks all take their parts from a `Container`: the case and payment services
(with the key store and the personal-data vault), the schema registry, the Kafka settings, the
relays and consumers of the published datasets (`nervenbahn.datasets`), the audit database, the
API context and the connector host. Nothing here connects in `__init__`; a part is opened when it
is first asked for and `close()` closes what was opened, in reverse order.

Other packages never import this module (import-linter contracts in pyproject.toml): connectors
get what they need through their SDK context, which the container fills.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import structlog
from eventsourcing.domain import datetime_now_with_tzinfo
from eventsourcing.persistence import InterfaceError as PersistenceInterfaceError
from eventsourcing.persistence import OperationalError as PersistenceOperationalError
from eventsourcing.persistence import PersistenceError

from bus.kafka_settings import NO_BROKER_HINT, KafkaSettings
from domain.application.cases import CaseService
from domain.errors import NervenbahnError
from domain.identity import UNKNOWN_IDENTITY, EstablishedIdentity
from domain.personal_data import PersonalDataVault
from domain.reference import load_branch_offices, load_reference_data
from nervenbahn.config import ConfigError, Settings, StoreConfig, load_settings
from nervenbahn.identity import process_identity
from nervenbahn.private import private_file, private_folder, warn_if_shared, write_private
from schemas.sql import database_errors

if TYPE_CHECKING:
    from bus.consumer import Consumer, Decoder, Handler
    from bus.effects import EffectStore
    from bus.positions import InstanceRecord, RelayPositionStore
    from bus.registry import SchemaRegistry
    from bus.relay import Relay, RelayStatus
    from bus.relay_batches import PreparingProcess
    from bus.topics import TopicSpec
    from connectors.host import ConnectorHost
    from connectors.sdk import PrivateFiles
    from domain.application.benefits import BenefitService
    from domain.application.payments import PaymentService
    from domain.application.ports import NotificationLog
    from domain.case import BenefitLookup, BenefitOnRecord
    from nervenbahn.api.context import ApiContext
    from nervenbahn.api.settings import ApiSettings
    from nervenbahn.audit.database import AuditDatabase
    from nervenbahn.claims_worker import ClaimsWorker
    from nervenbahn.incidents import IncidentStore
    from nervenbahn.instances import Membership
    from nervenbahn.metrics import Metrics
    from projections import Projection
    from projections.storage import ReadModelTarget
    from schemas.sql import Component

__all__ = [
    "CONNECTORS_FILE",
    "FUND_DECISIONS_CONNECTOR",
    "Container",
    "StoreUnavailableError",
    "build_benefit_service",
    "build_payment_service",
    "build_service",
    "close_service",
    "connectors_file",
    "kafka_or_embedded",
    "open_registry",
    "private_files",
    "store_lost",
]

log = structlog.get_logger("nervenbahn.container")

_S = TypeVar("_S")
"""A service opened beside the case service."""

CONNECTORS_FILE = "connectors.toml"
FUND_DECISIONS_CONNECTOR = "fund-decisions"
"""The fund-decisions connector's name: its consumer group and its fund officer's user id."""


class StoreUnavailableError(NervenbahnError):
    """The event store cannot be reached or opened."""


def store_lost(exc: BaseException) -> StoreUnavailableError | None:
    """The event store's connection failed under a command (eventsourcing's
    `OperationalError`/`InterfaceError`: a PostgreSQL restart, the server unreachable) as our
    `StoreUnavailableError`; None for any other error. The pool replaces the connection: the
    next command connects again."""
    if isinstance(exc, PersistenceOperationalError | PersistenceInterfaceError):
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreUnavailableError(
            f"the event store's connection failed ({reason}); the command may not have been "
            "recorded: check, then run it again"
        )
    return None


# --- the parts, each built on its own (tests and benchmarks use these directly) -------------


def build_service(
    settings: Settings,
    clock: Callable[[], datetime] = datetime_now_with_tzinfo,
    benefits: BenefitLookup | None = None,
    identity: EstablishedIdentity = UNKNOWN_IDENTITY,
) -> CaseService:
    """Open the key store and the event store named by the settings (a PostgreSQL store's
    first open in turn with other processes: `nervenbahn.store_opening`); `benefits` is how
    the case service looks benefit applications up (advances), None: not at all; `identity`
    who records a command that brings none of its own (the `Container` gives the process's
    operating-system user)."""
    from nervenbahn.store_opening import CASE_TABLES, opened_in_turn
    from schemas.postgres import DatabaseUnavailableError

    store = settings.store
    master_key = base64.b64decode(settings.master_key.get_secret_value())  # before any file
    try:
        if store.kind == "sqlite" and store.sqlite_path is not None:
            warn_if_shared(store.sqlite_path.parent)
            private_file(store.sqlite_path)  # its -wal and -shm files take its mode
        opening = partial(_open_case_service, store, master_key, clock, benefits, identity)
        return opened_in_turn(store, CASE_TABLES, opening)  # a fresh schema one at a time
    except database_errors(PersistenceError, OSError, DatabaseUnavailableError) as exc:
        raise StoreUnavailableError(f"cannot open the store {store.describe()}: {exc}") from exc


def _open_case_service(
    store: StoreConfig, master_key: bytes, clock: Callable[[], datetime],
    benefits: BenefitLookup | None, identity: EstablishedIdentity, create_tables: bool,
) -> CaseService:
    from nervenbahn.keystores import open_keystore

    keystore = open_keystore(store)
    vault = PersonalDataVault(keystore, master_key)
    return CaseService(
        _store_env(store, create_tables), vault=vault, reference=load_reference_data(),
        clock=clock, benefits=benefits, identity=identity,
    )


def _store_env(store: StoreConfig, create_tables: bool) -> dict[str, str]:
    """The event store's eventsourcing environment; no DDL when its tables are made."""
    return {**store.eventsourcing_env(), "CREATE_TABLE": "y" if create_tables else "n"}


def close_service(service: CaseService) -> None:
    """Close the event store and the key store."""
    service.close()
    service.vault.keystore.close()


def build_payment_service(
    settings: Settings,
    cases: CaseService,
    clock: Callable[[], datetime] = datetime_now_with_tzinfo,
) -> PaymentService:
    """The payments service on the store of `cases` (same database, its own events table)."""
    from domain.application.payments import PaymentService
    from nervenbahn.store_opening import PAYMENT_TABLES

    def opening(create_tables: bool) -> PaymentService:
        return PaymentService(_store_env(settings.store, create_tables), cases=cases,
                              clock=clock,
                              approval_threshold=settings.payments.approval_threshold)

    return _second_store(settings.store, PAYMENT_TABLES, "payments", opening)


def build_benefit_service(
    settings: Settings,
    cases: CaseService,
    clock: Callable[[], datetime] = datetime_now_with_tzinfo,
) -> BenefitService:
    """The benefits service on the store of `cases` (same database and vault, its own events
    table), recording as the case service's identity (the process's user) when a command
    brings none."""
    from domain.application.benefits import BenefitService
    from nervenbahn.store_opening import BENEFIT_TABLES

    def opening(create_tables: bool) -> BenefitService:
        return BenefitService(_store_env(settings.store, create_tables), vault=cases.vault,
                              reference=cases.reference, offices=load_branch_offices(),
                              clock=clock, identity=cases.identity)

    return _second_store(settings.store, BENEFIT_TABLES, "benefits", opening)


def _second_store(store: StoreConfig, tables: Component, name: str,
                  opening: Callable[[bool], _S]) -> _S:
    """A service with its own tables in the case store, opened in turn; the database's
    errors as StoreUnavailableError naming the `name` store."""
    from nervenbahn.store_opening import opened_in_turn

    try:
        return opened_in_turn(store, tables, opening)
    except database_errors(PersistenceError, OSError) as exc:
        raise StoreUnavailableError(
            f"cannot open the {name} store in {store.describe()}: {exc}"
        ) from exc


def open_registry(store: StoreConfig, url: str | None = None) -> SchemaRegistry:
    """The external registry at `url` (NERVENBAHN_SCHEMA_REGISTRY), else the embedded one."""
    from bus.registry_http import ConfluentRegistryClient
    from bus.registry_postgres import PostgresSchemaRegistry
    from bus.registry_sqlite import SQLiteSchemaRegistry

    if url:
        return ConfluentRegistryClient(url)
    if store.kind == "sqlite":
        assert store.sqlite_path is not None
        return SQLiteSchemaRegistry(store.sqlite_path)
    return PostgresSchemaRegistry(store.conninfo(), schema=store.schema_name or "public")


def _open_positions(store: StoreConfig) -> RelayPositionStore:
    from bus.positions_postgres import PostgresPositionStore
    from bus.positions_sqlite import SQLitePositionStore

    if store.kind == "sqlite":
        assert store.sqlite_path is not None
        return SQLitePositionStore(store.sqlite_path)
    return PostgresPositionStore(store.conninfo(), store.schema_name)


@contextmanager
def kafka_or_embedded(kafka: KafkaSettings, folder: Path) -> Iterator[KafkaSettings]:
    """`kafka` if it names brokers (NERVENBAHN_KAFKA), else an embedded broker (logs in
    `folder`) while in use."""
    from bus.broker import AUTO_CREATED_PARTITIONS, EmbeddedBroker

    if kafka.bootstrap_servers:
        yield kafka
        return
    if kafka.partitions != AUTO_CREATED_PARTITIONS:
        log.warning("the embedded broker re-creates a lost topic with its own partition count: "
                    "keep NERVENBAHN_KAFKA_PARTITIONS at that", partitions=kafka.partitions,
                    embedded_broker_partitions=AUTO_CREATED_PARTITIONS)
    with EmbeddedBroker(folder / "broker") as broker:
        yield kafka.with_bootstrap(broker.bootstrap)


def connectors_file(settings: Settings) -> Path:
    """NERVENBAHN_CONNECTORS, else `connectors.toml` in the store folder."""
    from nervenbahn.paths import store_folder

    return settings.connectors_file or store_folder(settings.store) / CONNECTORS_FILE


def private_files() -> PrivateFiles:
    """The private-file helpers of `nervenbahn.private`, as the connector SDK takes them."""
    from connectors.sdk import PrivateFiles

    return PrivateFiles(folder=private_folder, file=private_file, write=write_private)


# --- the container ---------------------------------------------------------------------------


class Container:
    """Every part of one process, built from the settings on first use, closed once.

    `service` may be handed in (a test's or a caller's own): the container then uses it and
    leaves closing it to its owner. `kafka` likewise: else NERVENBAHN_KAFKA, read on first use.
    Parts are created under a lock: the server's threads ask for them at the same time.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        kafka: KafkaSettings | None = None,
        service: CaseService | None = None,
        clock: Callable[[], datetime] = datetime_now_with_tzinfo,
    ) -> None:
        self._settings = settings
        self._kafka = kafka
        self._service = service
        self._owns_service = service is None
        self._clock = clock
        self._payments: PaymentService | None = None
        self._benefits: BenefitService | None = None
        self._registry: SchemaRegistry | None = None
        self._topics: dict[str, TopicSpec] | None = None
        self._closers: list[Callable[[], None]] = []
        self._lock = threading.RLock()
        self._metrics: Metrics | None = None
        self._timed: CaseService | None = None

    # --- settings and services ------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The settings (from the environment, read on first use, unless handed in)."""
        with self._lock:
            if self._settings is None:
                self._settings = load_settings()
            return self._settings

    @property
    def service(self) -> CaseService:
        """The case service on the configured store (with its key store and vault)."""
        with self._lock:
            if self._service is None:
                self._service = build_service(self.settings, self._clock,
                                              benefits=self._benefit_on_record,
                                              identity=process_identity())
                self._owns_service = True
            if self._metrics is not None and self._timed is not self._service:
                self._metrics.time_commands(self._service)
                self._timed = self._service
            return self._service

    @property
    def metrics(self) -> Metrics:
        """This process's metrics (`GET /metrics`), made when first asked for (a CLI command
        never asks: prometheus-client is 0.1 s of a start): the case service's commands are
        timed into it from then on, the API's requests too when its context comes from
        `api_context`."""
        from nervenbahn.metrics import Metrics

        with self._lock:
            if self._metrics is None:
                self._metrics = Metrics()
                if self._service is not None:
                    self._metrics.time_commands(self._service)
                    self._timed = self._service
            return self._metrics

    @property
    def payments(self) -> PaymentService:
        """The payments service on the same store."""
        with self._lock:
            if self._payments is None:
                self._payments = build_payment_service(self.settings, self.service, self._clock)
            return self._payments

    @property
    def benefits(self) -> BenefitService:
        """The benefits service (applications, delegations) on the same store."""
        with self._lock:
            if self._benefits is None:
                self._benefits = build_benefit_service(self.settings, self.service, self._clock)
            return self._benefits

    def _benefit_on_record(self, application_id: UUID) -> BenefitOnRecord:
        """The case service's benefits lookup, bound late: the benefits service is built
        from the case service (its vault), so it is opened at the first advance command,
        not when the case service is."""
        return self.benefits.on_record(application_id)

    def claims_worker(self) -> ClaimsWorker:
        """A new claims worker (`serve`'s `advance-claims`) over the case, benefits and
        payments services, recording as the claims process's system actor."""
        from domain.application.claims import AdvanceClaims
        from nervenbahn.claims_worker import ClaimsWorker

        claims = AdvanceClaims(self.service, self.benefits, self.payments, clock=self._clock)
        return ClaimsWorker(claims, self.service, self.benefits, self.payments)

    def audit_database(self) -> AuditDatabase:
        """A new connection to the store's audit tables (the caller closes it)."""
        from nervenbahn.audit.database import open_audit_database

        return open_audit_database(self.settings.store)

    def incidents(self) -> IncidentStore:
        """A new connection to the store's incidents table (the caller closes it);
        `StoreUnavailableError` if the store cannot be reached."""
        from nervenbahn.incidents import open_incident_store

        try:
            return open_incident_store(self.settings.store)
        except database_errors(OSError) as exc:
            raise StoreUnavailableError(
                f"cannot open the incidents of {self.settings.store.describe()}: {exc}"
            ) from exc

    def api_context(self, api: ApiSettings | None = None) -> ApiContext:
        """The HTTP API's context on the store (read models, vault, access log, keys); the
        caller closes it (its access log)."""
        # imported here: the API's error handlers import `StoreUnavailableError` from here
        from nervenbahn.api.context import build_api_context

        return build_api_context(
            self.settings, self.service, api, metrics=self.metrics, registry=self.registry,
            kafka=self._kafka,  # the broker handed in (embedded, a test's prefix), else settings
            benefits=lambda: self.benefits,
            refresh_benefit_applications=lambda: self.refresh_read_model(
                "benefit_applications", timed=True),
        )

    # --- the bus ----------------------------------------------------------------------------

    @property
    def kafka(self) -> KafkaSettings:
        """The broker's settings: handed in, else NERVENBAHN_KAFKA; ConfigError if neither."""
        with self._lock:
            if self._kafka is None:
                kafka = self.settings.kafka
                if not kafka.bootstrap_servers:
                    raise ConfigError(f"NERVENBAHN_KAFKA: no broker configured; {NO_BROKER_HINT}")
                self._kafka = kafka
            return self._kafka

    @contextmanager
    def kafka_or_embedded(self, folder: Path) -> Iterator[KafkaSettings]:
        """Use NERVENBAHN_KAFKA if set, else an embedded broker (logs in `folder`), for the
        block; the bus parts opened meanwhile are closed at its end."""
        with kafka_or_embedded(self.settings.kafka, folder) as kafka:
            previous, self._kafka, self._topics = self._kafka, kafka, None
            try:
                yield kafka
            finally:
                self._close_bus()
                self._kafka, self._topics = previous, None

    @property
    def registry(self) -> SchemaRegistry:
        """The schema registry (NERVENBAHN_SCHEMA_REGISTRY, else the store's own)."""
        with self._lock:
            if self._registry is None:
                self._registry = open_registry(self.settings.store, self.settings.registry.url)
            return self._registry

    @property
    def topics(self) -> dict[str, TopicSpec]:
        """Every topic of the bus by dataset ("case-events": …)."""
        from bus.topics import installation_topics

        with self._lock:
            if self._topics is None:
                specs = installation_topics(self.kafka)
                self._topics = {spec.dataset: spec for spec in specs}
            return self._topics

    def topic(self, name: str) -> TopicSpec:
        """The topic of the dataset `name`; ConfigError for one the bus does not know."""
        from nervenbahn.datasets import dataset

        dataset(name)
        return self.topics[name]

    def codec(self, name: str) -> Decoder:
        """A codec of the dataset `name` (`nervenbahn.datasets`)."""
        from nervenbahn.datasets import dataset

        return dataset(name).codec(self, self.topic(name).name)

    def relay(
        self, name: str, *, batch_size: int = 500, broker_check_seconds: float = 5.0
    ) -> Relay:
        """The relay that fills the topic of dataset `name`, its position (named in the
        dataset table) kept in the store's database."""
        from bus.relay import Relay
        from nervenbahn.datasets import dataset

        spec = dataset(name)
        if spec.relay is None or spec.encoder is None or spec.source is None:
            raise ConfigError(f"dataset {name!r}: no relay fills its topic")
        encoder = spec.encoder(self, lambda: self.codec(name))
        positions = _open_positions(self.settings.store)
        self._closers.append(positions.close)
        relay = Relay(
            preparing=self._preparing_process(name, spec.relay),
            service=spec.source(self),
            encoder=encoder,
            positions=positions,
            settings=self.kafka,
            topic=self.topic(name),
            name=spec.relay,
            batch_size=batch_size,
            broker_check_seconds=broker_check_seconds,
            lease_seconds=self.settings.relay.lease_seconds,
            renew_seconds=self.settings.relay.renew_seconds,
        )
        self._closers.append(relay.release_lease)  # before its positions close (reversed)
        return relay

    def _preparing_process(self, name: str, relay: str) -> PreparingProcess | None:
        """The process that prepares the batches of dataset `name`'s relay (named `relay`)
        while it is far behind (NERVENBAHN_RELAY_PREPARE_FROM_LAG; none if 0)."""
        from bus.relay_batches import PreparingProcess
        from nervenbahn.relay_source import relay_source

        from_lag = self.settings.relay.prepare_from_lag
        if not from_lag:
            return None
        return PreparingProcess(partial(relay_source, self.settings, self.kafka, name),
                                from_lag=from_lag, name=relay)

    def relay_status(self, name: str) -> RelayStatus:
        """Position, head and lag of the relay of dataset `name`, read from the store alone
        (no broker needed: `nervenbahn status`)."""
        from bus.relay import RelayStatus
        from nervenbahn.datasets import dataset

        spec = dataset(name)
        if spec.relay is None or spec.source is None:
            raise ConfigError(f"dataset {name!r}: no relay fills its topic")
        positions = _open_positions(self.settings.store)
        try:
            position = positions.load(spec.relay)
        finally:
            positions.close()
        head = spec.source(self).max_position()
        return RelayStatus(position.position, head, position.published)

    def consumer(
        self, name: str, group_id: str, handler: Handler, store: EffectStore, **options: Any
    ) -> Consumer:
        """A consumer of the topic of dataset `name` in group `group_id`, its effects, event
        ids and offsets in `store`."""
        from bus.consumer import Consumer, RetryPolicy

        codec = self.codec(name)
        retry = options.pop("retry", RetryPolicy())
        return Consumer(
            settings=self.kafka,
            group_id=group_id,
            topics=[self.topic(name).name],
            codec=codec,
            handler=handler,
            store=store,
            retry=retry,
            **options,
        )

    def register_fund_decision_schema(self) -> int:
        """Register the fund's `FundDecision` and `ClaimPaid` schemas under the decisions
        topic's subjects (at start), so that the fund's producer finds them at the served
        `/registry` (latest version, no auto-registration); the FundDecision's id."""
        from bus.benefits_codec import FundDecisionCodec
        from nervenbahn.datasets import FUND_DECISIONS

        codec = self.codec(FUND_DECISIONS)
        assert isinstance(codec, FundDecisionCodec)
        return codec.register_schemas()["FundDecision"]

    def fund_decisions_consumer(
        self, store: EffectStore, name: str = FUND_DECISIONS_CONNECTOR, **options: Any
    ) -> Consumer:
        """The fund-decisions connector (`connectors.fund_decisions`): a consumer of the
        decisions topic in group `name` that records each decision in the benefits service
        as the fund officer `name` (and each claim paid on its case), its bookkeeping in
        `store` (`connector_store`)."""
        from connectors.fund_decisions.recorder import DecisionRecorder
        from nervenbahn.datasets import FUND_DECISIONS

        recorder = DecisionRecorder(name, self.benefits, self.service)
        return self.consumer(FUND_DECISIONS, name, recorder.handle, store, **options)

    def connector_store(self, name: str) -> EffectStore:
        """A bus connector's consumer bookkeeping: a SQLite file of its own in the store's
        connectors folder, else the store's PostgreSQL schema (the caller closes it)."""
        from bus.effects_postgres import PostgresEffectStore
        from bus.effects_sqlite import SQLiteEffectStore
        from nervenbahn.paths import store_folder

        config = self.settings.store
        if config.kind == "sqlite":
            path = store_folder(config) / "connectors" / f"{name}.db"
            return SQLiteEffectStore(private_file(path))
        return PostgresEffectStore(config.conninfo(), config.schema_name or "public")

    def projection_consumer(
        self, projection: Projection, store: EffectStore, **options: Any
    ) -> Consumer:
        """The consumer that keeps `projection` up to date from its dataset."""
        return self.consumer(
            projection.dataset, projection.group, projection.consume, store, **options
        )

    def publish_checkpoints(self, db: AuditDatabase) -> list[int]:
        """Send the store's unpublished signed checkpoints to the audit topic (created if
        missing); the sequences the broker acknowledged."""
        from bus.topics import ensure_topics
        from nervenbahn.audit.checkpoints import publish_checkpoints
        from nervenbahn.datasets import AUDIT_CHECKPOINTS

        topic = self.topic(AUDIT_CHECKPOINTS)
        ensure_topics(self.kafka, [topic])
        codec = self.codec(AUDIT_CHECKPOINTS)
        return publish_checkpoints(db, self.kafka, codec, topic)  # type: ignore[arg-type]

    # --- read models ----------------------------------------------------------------------

    def projection(self, name: str) -> Projection:
        """The projection `name` (`projections.READ_MODELS`), configured from the settings:
        its consumer group is this instance's own if its read models are
        (`nervenbahn.instances.group_suffix`)."""
        from nervenbahn.instances import group_suffix
        from projections import READ_MODELS

        projection = READ_MODELS[name].from_settings(self.settings)
        projection.group_suffix = group_suffix(self.settings)
        return projection

    def membership(self) -> Membership:
        """This instance's announcement among the `serve` instances on the store (not yet
        joined), on a position store of its own."""
        from nervenbahn.instances import Membership, instance_record

        return Membership(_open_positions(self.settings.store), instance_record(self.settings))

    def live_instances(self) -> list[InstanceRecord]:
        """The `serve` instances announced live on the store (`nervenbahn status`)."""
        positions = _open_positions(self.settings.store)
        try:
            return positions.live_instances()
        finally:
            positions.close()

    def event_source(self, projection: Projection) -> NotificationLog:
        """The notification log a rebuild of `projection` reads (`Projection.source`): the
        case store's, or the benefits store's own table."""
        return self.benefits if projection.source == "benefits" else self.service

    def read_model(self, name: str) -> ReadModelTarget:
        """Where the read model `name` lives: its SQLite file beside the store, or the schema
        of NERVENBAHN_PROJECTIONS_STORE."""
        from nervenbahn.paths import read_model_target

        return read_model_target(self.settings, name)

    def ensure_read_model(self, projection: Projection) -> int | None:
        """Rebuild the projection's read model from the event store if it does not exist yet;
        the events applied, None if it existed."""
        from projections.storage import read_model_built

        target = self.read_model(projection.name)
        if read_model_built(target, projection.tables[0]):
            return None
        with _read_model_turn(target, projection.name):  # another `serve` may be building it
            if read_model_built(target, projection.tables[0]):
                return None
            return _rebuild(projection, self.event_source(projection), target)

    def refresh_read_model(self, name: str, *, timed: bool = False) -> int | None:
        """Bring the read model `name` up to date with its store: apply only the notifications
        after the last one it applied (`projections.framework.catch_up`), or rebuild it if it
        is missing, its schema changed or it recorded no notification id; the events applied,
        None if it was up to date. For a read model no consumer keeps up to date yet (the
        benefit applications' until their topic is published): its readers call this first.

        Up to date is checked before taking the read model's turn, so that readers do not
        queue behind each other when nothing is new.

        `timed` (a server's reader asks): the turn is waited for the readers' timeout at most
        (NERVENBAHN_POSTGRES_READ_TIMEOUT, on SQLite too), and on PostgreSQL the check reads
        with that timeout; then `ReadModelUnreadableError` (a 503): a read model locked by a
        migration, a rebuild (`nervenbahn projections rebuild`) or another reader's catch-up
        must not hold the request's thread without limit. (The catch-up's own writes, once in
        the turn, are not limited.)"""
        from projections.framework import applied_notification_id, catch_up
        from projections.storage import PostgresReadModels

        projection = self.projection(name)
        source = self.event_source(projection)
        target = self.read_model(name)
        wait_s = (
            target.read_timeout_s
            if isinstance(target, PostgresReadModels)
            else float(self.settings.store.read_timeout)
        )
        with _timed_out_as_unreadable(timed):
            if applied_notification_id(projection, target, timed=timed) == source.max_position():
                return None
            with _read_model_turn(target, name, wait_s=wait_s if timed else None):
                applied = applied_notification_id(projection, target, timed=timed)
                latest = source.max_position()
                if applied == latest:
                    return None
                if applied is None or applied > latest:  # missing, changed, store replaced
                    return _rebuild(projection, source, target)
                return catch_up(projection, source, target, after=applied)

    def rebuild_read_model(
        self, name: str, *, progress: Callable[[int, int], object] = lambda done, total: None
    ) -> int:
        """Rebuild the read model `name` from its store in the read model's turn (the one
        `refresh_read_model` and `ensure_read_model` take, so that no two rebuilds write the
        same temporary file); `progress` is told the events done and the total. The events
        applied."""
        projection = self.projection(name)
        target = self.read_model(name)
        with _read_model_turn(target, name):
            return _rebuild(projection, self.event_source(projection), target, progress)

    def projection_store(self, projection: Projection) -> EffectStore:
        """The projection's consumer store (its tables and the consumer's bookkeeping); the
        caller closes it (it belongs to the consumer's thread)."""
        from projections import open_projection_store

        return open_projection_store(projection, self.read_model(projection.name))

    # --- connectors -----------------------------------------------------------------------

    def connector_host(self, *, bus: bool = True) -> ConnectorHost:
        """The connector host of the configured file and the store's connectors folder (the
        caller closes it); with `bus`, sinks consume through this container."""
        from connectors.host import ConnectorHost
        from nervenbahn.paths import store_folder

        return ConnectorHost.from_file(
            connectors_file(self.settings),
            self.service,
            store_folder(self.settings.store) / "connectors",
            (lambda: self) if bus else None,
            files=private_files(),
            partitions=self.settings.kafka.partitions,
        )

    # --- closing --------------------------------------------------------------------------

    def _close_bus(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers.clear()

    def close(self) -> None:
        """Close what the container opened (a service handed in stays open); a part asked
        for afterwards is opened anew."""
        with self._lock:
            self._close_bus()
            if self._registry is not None:
                self._registry.close()
                self._registry = None
            if self._payments is not None:
                self._payments.close()
                self._payments = None
            if self._benefits is not None:
                self._benefits.close()
                self._benefits = None
            if self._service is not None and self._owns_service:
                close_service(self._service)
                self._service = None


def _rebuild(
    projection: Projection,
    source: NotificationLog,
    target: ReadModelTarget,
    progress: Callable[[int, int], object] = lambda done, total: None,
) -> int:
    """Rebuild the read model (its folder made if missing); the caller holds its turn."""
    from projections import framework  # the module's function, looked up when called

    if isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)
    return framework.rebuild(projection, source, target, progress=progress)


@contextmanager
def _timed_out_as_unreadable(timed: bool) -> Iterator[None]:
    """A statement or lock wait of a timed refresh that ran out (PostgreSQL cancelled it, or
    a SQLite file's turn was not taken in time) as `ReadModelUnreadableError`; nothing
    translated if not `timed`."""
    if not timed:
        yield
        return
    import psycopg

    from nervenbahn.store_opening import TurnNotTakenError
    from projections.errors import ReadModelUnreadableError

    try:
        yield
    except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable,
            TurnNotTakenError) as exc:
        raise ReadModelUnreadableError(f"cannot be brought up to date ({exc})") from exc


@contextmanager
def _read_model_turn(
    target: ReadModelTarget, name: str, *, wait_s: float | None = None
) -> Iterator[None]:
    """One process at a time builds the read model `name`: a `flock` beside its SQLite file
    (`nervenbahn.store_opening.sqlite_turn`), or a session advisory lock in its PostgreSQL
    schema, held until the build is done; waited for `wait_s` at most, if given (then
    `TurnNotTakenError`, or psycopg's `LockNotAvailable`)."""
    from nervenbahn.store_opening import sqlite_turn

    if isinstance(target, Path):
        with sqlite_turn(target, wait_s=wait_s):
            yield
        return
    with target.connect() as db:
        if wait_s:
            db.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(wait_s * 1000)}ms",))
        db.execute("SELECT pg_advisory_lock(hashtext(%s))",
                   (f"nervenbahn read model {target.schema}.{name}",))
        yield
