"""A consumer whose batch transaction deadlocks with another writer of the same PostgreSQL
database (instances sharing read models update the same aggregate rows): PostgreSQL rolls the
consumer's transaction back, and the batch runs again. No message is dead-lettered for it (the
CI run of stop 28 lost 4 reporting facts that way: `DeadlockDetected` was taken for a handler
refusing the message), and every event takes effect once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from bus.consumer import ConsumerStalledError, Received, RetryPolicy
from bus.effects_postgres import PostgresEffectStore
from bus.kafka_settings import KafkaSettings
from bus.topics import dead_letter_topic, topic_message_counts
from nervenbahn.config import StoreConfig
from tests.bus.pipeline import open_supported_case, pipeline
from tests.bus.waiting import wait_until

pytestmark = pytest.mark.postgres


class _Rows:
    """A table of two counters, `a` and `b`, in the consumer's schema, and a second writer
    that takes them in the other order than the handler (`cross`)."""

    def __init__(self, store: PostgresEffectStore, schema: str, conninfo: str) -> None:
        self.counters = sql.Identifier(schema, "counters")
        self.effects = sql.Identifier(schema, "effects")
        self.conninfo = conninfo
        db = store.connection.connection()
        db.execute(sql.SQL("CREATE TABLE {} (name text PRIMARY KEY, n int)").format(self.counters))
        db.execute(sql.SQL("INSERT INTO {} VALUES ('a', 0), ('b', 0)").format(self.counters))
        db.execute(sql.SQL("CREATE TABLE {} (event_id uuid PRIMARY KEY, kind text)")
                   .format(self.effects))
        self.holds_b = threading.Event()
        self.handler_holds_a = threading.Event()
        self.done = threading.Event()

    def add(self, tx: psycopg.Connection[Any], name: str) -> None:
        tx.execute(sql.SQL("UPDATE {} SET n = n + 1 WHERE name = %s").format(self.counters),
                   (name,))

    def cross(self) -> None:
        """The other writer: `b`, then (once the handler holds `a`) `a`. Its deadlock check
        waits a minute, so the consumer's transaction (one second, the default) is the one
        PostgreSQL rolls back."""
        with psycopg.connect(self.conninfo) as other:
            other.execute("SET deadlock_timeout = '60s'")
            self.add(other, "b")
            self.holds_b.set()
            self.handler_holds_a.wait(30)
            self.add(other, "a")
            other.commit()
        self.done.set()


def _store(postgres_dsn: str) -> tuple[PostgresEffectStore, str, str]:
    config = StoreConfig.parse(f"{postgres_dsn}&application_name=nbconflict-{uuid4().hex[:8]}")
    conninfo = config.conninfo()
    return PostgresEffectStore(conninfo, config.schema_name), config.schema_name, conninfo


def test_a_batch_that_deadlocks_with_another_writer_runs_again_and_is_never_dead_lettered(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings, postgres_dsn: str,
) -> None:
    store, schema, conninfo = _store(postgres_dsn)
    rows = _Rows(store, schema, conninfo)
    attempts: list[str] = []

    def handler(received: Received, tx: psycopg.Connection[Any]) -> None:
        attempts.append(received.event_type)
        if len(attempts) == 1:  # the first message meets the other writer
            rows.add(tx, "a")
            rows.handler_holds_a.set()
            rows.add(tx, "b")  # waits for the other writer, which waits for `a`: a deadlock
        tx.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(rows.effects),
                   (received.event_id, received.event_type))

    with pipeline(tmp_path, master_key, kafka_settings) as line:
        open_supported_case(line.service)
        with line.container.relay("case-events", batch_size=50) as relay:
            relay.run(threading.Event(), until_caught_up=True)
        other = threading.Thread(target=rows.cross, daemon=True)
        other.start()
        assert rows.holds_b.wait(30), "the other writer never took its row"
        consumer = line.container.consumer("case-events", "conflicts", handler, store)
        with consumer:
            wait_until(lambda: consumer.lag() == 0 and len(attempts) > 3,
                       step=lambda: consumer.poll_once(200),
                       what="every message applied after the deadlock")
        other.join(30)

    db = store.connection.connection()
    kinds = db.execute(sql.SQL("SELECT kind FROM {} ORDER BY kind").format(rows.effects)).fetchall()
    counters = dict(db.execute(sql.SQL("SELECT name, n FROM {}").format(rows.counters)).fetchall())
    store.close()
    assert rows.done.is_set(), "the other writer did not commit"
    assert [kind for (kind,) in kinds] == ["AssessmentCompleted", "CaseOpened", "SupportGranted"]
    assert counters == {"a": 1, "b": 1}, "the rolled-back attempt left its update behind"
    assert attempts[0] == attempts[1] == "CaseOpened", "the batch did not run again"
    dead = dead_letter_topic(kafka_settings, "conflicts")
    assert topic_message_counts(kafka_settings, [dead])[dead] in (None, 0)


def test_a_batch_that_keeps_conflicting_stalls_the_consumer_with_nothing_committed(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings, postgres_dsn: str,
) -> None:
    store, schema, _ = _store(postgres_dsn)
    effects = sql.Identifier(schema, "effects")
    store.connection.connection().execute(
        sql.SQL("CREATE TABLE {} (event_id uuid PRIMARY KEY)").format(effects))
    tries: list[int] = []

    def handler(received: Received, tx: psycopg.Connection[Any]) -> None:
        tx.execute(sql.SQL("INSERT INTO {} VALUES (%s)").format(effects), (received.event_id,))
        tries.append(1)
        raise psycopg.errors.SerializationFailure("could not serialize access")

    with pipeline(tmp_path, master_key, kafka_settings) as line:
        open_supported_case(line.service)
        with line.container.relay("case-events", batch_size=50) as relay:
            relay.run(threading.Event(), until_caught_up=True)
        consumer = line.container.consumer("case-events", "conflicts-for-ever", handler, store)
        consumer.retry = RetryPolicy(attempts=3, first_wait=0.01)
        with consumer, pytest.raises(ConsumerStalledError, match="kept conflicting"):
            wait_until(lambda: False, step=lambda: consumer.poll_once(200),
                       what="the consumer to stall")

    count = store.connection.connection().execute(
        sql.SQL("SELECT count(*) FROM {}").format(effects)).fetchone()
    store.close()
    assert len(tries) == 3, "one try and two retries of the batch's first message"
    assert count == (0,)
    dead = dead_letter_topic(kafka_settings, "conflicts-for-ever")
    assert topic_message_counts(kafka_settings, [dead])[dead] in (None, 0)
