"""A consumer whose PostgreSQL database goes away in the middle of a batch: nothing of the batch
is committed, no message is dead-lettered for it (the messages are not poison), and the next
poll applies every event once, on a new connection (issue 12, finding 5)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from bus.consumer import Received
from bus.effects_postgres import PostgresEffectStore
from bus.kafka_settings import KafkaSettings
from bus.topics import dead_letter_topic, topic_message_counts
from nervenbahn.config import StoreConfig
from schemas.postgres import DatabaseUnavailableError
from tests.bus.pipeline import open_supported_case, pipeline
from tests.bus.waiting import wait_until
from tests.storage.test_postgres_recovery import terminate

pytestmark = pytest.mark.postgres


def test_a_batch_that_loses_its_database_is_read_again_and_never_dead_lettered(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings,
    postgres_server_url: str, postgres_dsn: str,
) -> None:
    name = f"nbconsumer-{uuid4().hex[:10]}"
    store_config = StoreConfig.parse(f"{postgres_dsn}&application_name={name}")
    store = PostgresEffectStore(store_config.conninfo(), store_config.schema_name)
    effects = sql.Identifier(store_config.schema_name, "effects")
    store.connection.connection().execute(
        sql.SQL("CREATE TABLE {} (event_id uuid PRIMARY KEY, kind text)").format(effects)
    )
    cut = threading.Event()

    def handler(received: Received, tx: psycopg.Connection[Any]) -> None:
        if not cut.is_set():  # the server restarts while the first message is handled
            cut.set()
            terminate(postgres_server_url, name)
        tx.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(effects),
                   (received.event_id, received.event_type))

    with pipeline(tmp_path, master_key, kafka_settings) as line:
        open_supported_case(line.service)
        with line.container.relay("case-events", batch_size=50) as relay:
            relay.run(threading.Event(), until_caught_up=True)
        consumer = line.container.consumer("case-events", "loses-db", handler, store)
        with consumer:
            with pytest.raises(DatabaseUnavailableError):
                wait_until(lambda: cut.is_set(), step=lambda: consumer.poll_once(200),
                           what="the first message handled")
            wait_until(lambda: consumer.lag() == 0, step=lambda: consumer.poll_once(200),
                       what="every message applied after the loss")

    rows = store.connection.connection().execute(
        sql.SQL("SELECT kind FROM {} ORDER BY kind").format(effects)).fetchall()
    store.close()
    assert [kind for (kind,) in rows] == ["AssessmentCompleted", "CaseOpened", "SupportGranted"]
    dead = dead_letter_topic(kafka_settings, "loses-db")
    assert topic_message_counts(kafka_settings, [dead])[dead] in (None, 0)
