"""A PostgreSQL restart, simulated: every connection of this test ends (`pg_terminate_backend`
on the test's own `application_name`, never the shared server's restart), and each PostgreSQL
part of ours works again on its next call, without being reopened (issue 12, finding 5: before,
relays retried "the connection is closed" for ever, personal-data reads failed for ever and
every `open_case` failed until `serve` was restarted)."""

from __future__ import annotations

import threading
import time
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

from bus.effects import PartitionMark
from bus.effects_postgres import PostgresEffectStore
from bus.positions import RelayPosition
from bus.positions_postgres import PostgresPositionStore
from bus.registry_postgres import PostgresSchemaRegistry
from nervenbahn.audit.database import open_audit_database
from nervenbahn.config import Settings
from nervenbahn.container import build_service, close_service
from nervenbahn.keystores_postgres import PostgresKeyStore
from schemas.postgres import (
    SILENT_SERVER_S,
    DatabaseUnavailableError,
    PostgresConnection,
    quiet_since_last_use,
)
from tests.audit.test_chain import settings_for
from tests.bus.pipeline import open_supported_case
from tests.bus.waiting import wait_until

pytestmark = pytest.mark.postgres

DEADLINE_S = 30.0


def _named(postgres_dsn: str) -> tuple[str, str]:
    """The store URL with an application name of this test's own, and that name."""
    name = f"nbtest-{uuid4().hex[:12]}"
    return f"{postgres_dsn}&application_name={name}", name


def terminate(server_url: str, application_name: str) -> int:
    """End every connection named `application_name` (what a restart does to them)."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return len(rows)


def _settings(postgres_dsn: str) -> tuple[Settings, str]:
    url, name = _named(postgres_dsn)
    return settings_for(url), name


def test_relay_positions_are_read_and_saved_again_after_the_connections_are_lost(
    postgres_server_url: str, postgres_dsn: str
) -> None:
    settings, name = _settings(postgres_dsn)
    store = PostgresPositionStore(settings.store.conninfo(), settings.store.schema_name)
    try:
        store.save("cases", RelayPosition(3, 3, "e1"))
        assert terminate(postgres_server_url, name) >= 1
        assert store.load("cases") == RelayPosition(3, 3, "e1")
        assert terminate(postgres_server_url, name) >= 1
        store.save("cases", RelayPosition(4, 4, "e1"))
        assert store.load("cases") == RelayPosition(4, 4, "e1")
    finally:
        store.close()


def test_the_key_store_answers_again_after_the_connections_are_lost(
    postgres_server_url: str, postgres_dsn: str
) -> None:
    settings, name = _settings(postgres_dsn)
    keys = PostgresKeyStore(settings.store)
    person = uuid4()
    try:
        keys.store_new([person], lambda _: b"wrapped")
        assert terminate(postgres_server_url, name) >= 1
        assert keys.load(person) == b"wrapped"
        assert terminate(postgres_server_url, name) >= 1
        assert keys.destroy(person) is True
        assert keys.is_erased(person)
    finally:
        keys.close()


def test_a_consumer_store_begins_its_next_batch_on_a_new_connection(
    postgres_server_url: str, postgres_dsn: str
) -> None:
    settings, name = _settings(postgres_dsn)
    store = PostgresEffectStore(settings.store.conninfo(), settings.store.schema_name)
    event = uuid4()
    try:
        assert terminate(postgres_server_url, name) >= 1
        with store.transaction() as tx:
            store.mark(tx, "g", event)
            store.advance(tx, "g", "t", 0, PartitionMark(1, "e"))
        assert terminate(postgres_server_url, name) >= 1
        assert store.offsets("g") == {("t", 0): PartitionMark(1, "e")}
        with store.transaction() as tx:
            assert store.seen(tx, "g", event)
    finally:
        store.close()


def test_a_transaction_that_loses_its_connection_fails_clearly_and_the_next_succeeds(
    postgres_server_url: str, postgres_dsn: str
) -> None:
    settings, name = _settings(postgres_dsn)
    store = PostgresEffectStore(settings.store.conninfo(), settings.store.schema_name)
    try:
        def lose_the_connection_half_way() -> None:
            with store.transaction() as tx:
                store.mark(tx, "g", uuid4())
                terminate(postgres_server_url, name)
                store.mark(tx, "g", uuid4())

        with pytest.raises(DatabaseUnavailableError, match="was lost"):
            lose_the_connection_half_way()
        assert store.lost(DatabaseUnavailableError("gone"))
        assert store.offsets("g") == {}  # nothing of the lost transaction was kept
        with store.transaction() as tx:
            store.advance(tx, "g", "t", 0, PartitionMark(2))
        assert store.offsets("g") == {("t", 0): PartitionMark(2)}
    finally:
        store.close()


def test_the_registry_and_the_audit_database_answer_again_after_the_connections_are_lost(
    postgres_server_url: str, postgres_dsn: str
) -> None:
    settings, name = _settings(postgres_dsn)
    registry = PostgresSchemaRegistry(settings.store.conninfo(),
                                      schema=settings.store.schema_name)
    schema_id = registry.register("s-value", {"type": "string"})
    audit = open_audit_database(settings.store)
    try:
        assert terminate(postgres_server_url, name) >= 2
        assert registry.register("s-value", {"type": "string"}) == schema_id
        assert audit.has_table("schema_registry")
    finally:
        registry.close()
        audit.close()


def test_a_long_running_case_service_records_open_case_again_after_the_connections_are_lost(
    postgres_server_url: str, postgres_dsn: str
) -> None:
    settings, name = _settings(postgres_dsn)
    service = build_service(settings)
    try:
        open_supported_case(service, 0)
        assert terminate(postgres_server_url, name) >= 2  # the event store's and the keys'
        case_id = open_supported_case(service, 1)  # no exception: pre-ping, reconnect
        assert service.get_case(case_id).version >= 3
    finally:
        close_service(service)


def test_a_pooled_connection_is_pinged_only_when_the_server_said_something_on_it(
    postgres_server_url: str, postgres_dsn: str
) -> None:
    settings, name = _settings(postgres_dsn)
    with psycopg.connect(settings.store.conninfo(), autocommit=True) as conn:
        conn.execute("SELECT 1").fetchall()
        assert quiet_since_last_use(conn)  # idle and live: no round trip to check it

        assert terminate(postgres_server_url, name) == 1
        wait_until(lambda: not quiet_since_last_use(conn), within=DEADLINE_S,
                   what="the ended connection's socket readable")
        with pytest.raises(psycopg.OperationalError):
            ConnectionPool.check_connection(conn)  # the ping that then runs finds it gone


def test_the_store_s_connections_carry_the_application_name_of_its_url(
    postgres_server_url: str, postgres_dsn: str
) -> None:
    settings, name = _settings(postgres_dsn)
    service = build_service(settings)
    try:
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchone()
        assert row is not None and row[0] >= 2
    finally:
        close_service(service)


def test_a_current_store_opens_without_waiting_for_the_writers_table_lock(
    postgres_server_url: str, postgres_dsn: str
) -> None:
    """A writer holds the events table's EXCLUSIVE lock (as every insert does): DDL on that
    table (eventsourcing's CREATE INDEX IF NOT EXISTS takes a SHARE lock) would wait for it;
    opening a current store runs none and does not wait."""
    settings, _ = _settings(postgres_dsn)
    close_service(build_service(settings))  # made current
    opened = threading.Event()

    def open_again() -> None:
        close_service(build_service(settings))
        opened.set()

    schema = settings.store.schema_name
    with psycopg.connect(postgres_server_url, autocommit=True) as writer, writer.transaction():
        writer.execute(sql.SQL("LOCK TABLE {}.{} IN EXCLUSIVE MODE").format(
            sql.Identifier(schema), sql.Identifier("nervenbahn_events")))
        started = time.monotonic()
        thread = threading.Thread(target=open_again, daemon=True)
        thread.start()
        assert opened.wait(timeout=DEADLINE_S / 3), "opening a current store ran DDL (waited)"
        print(f"opened under the writer's lock in {time.monotonic() - started:.2f} s")
    thread.join(timeout=DEADLINE_S)


def test_a_connection_that_cannot_be_made_is_a_clear_error() -> None:
    connection = PostgresConnection("host=127.0.0.1 port=1 dbname=x connect_timeout=2")
    with pytest.raises(DatabaseUnavailableError, match=r"127\.0\.0\.1:1/x cannot be reached"):
        connection.run(lambda db: db.execute("SELECT 1"), idempotent=True)


def test_every_connection_gives_up_on_a_silent_server(
    postgres_dsn: str,
) -> None:
    """A server gone silent (a failover behind the same address, a partition) answers
    nothing, not even a refusal: without TCP limits a statement waits for the kernel's
    retransmissions, about a quarter of an hour. It cannot be made here without a firewall:
    this holds the limits that libpq reports in use on the event store's pooled connections
    and on the connection string every other adapter connects with."""
    settings, _ = _settings(postgres_dsn)
    expected = {"tcp_user_timeout": str(SILENT_SERVER_S * 1000),
                "keepalives": "1", "keepalives_idle": "10", "keepalives_count": "3"}
    service = build_service(settings)
    try:
        open_supported_case(service, 1)
        with service.recorder.datastore.pool.connection() as conn:  # type: ignore[attr-defined]
            pooled = conn.info.get_parameters()
    finally:
        close_service(service)
    with psycopg.connect(settings.store.conninfo(), autocommit=True) as conn:
        adapters = conn.info.get_parameters()

    for used in (pooled, adapters):
        assert {name: used.get(name) for name in expected} == expected
