"""The bus part of `nervenbahn demo`: relay every event onto Kafka, let a subscriber read
them, serve the read models over HTTP for a few sample queries, count the messages per topic."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bus.consumer import Received
from bus.effects_sqlite import SQLiteEffectStore
from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, dead_letter_topic, ensure_topics, topic_message_counts
from nervenbahn.container import FUND_DECISIONS_CONNECTOR, Container
from nervenbahn.datasets import CASE_EVENTS, CASE_FACTS
from nervenbahn.demo_api import serve_and_query
from nervenbahn.demo_connectors import DemoPayments, deliver_payments
from nervenbahn.demo_session import DemoSession

__all__ = ["relay_and_subscribe"]

SUBSCRIBER = "demo-subscriber"


def relay_and_subscribe(
    rt: DemoSession, folder: Path, payments: DemoPayments | None = None
) -> None:
    """Relay the store onto the bus, consume it once, print what the topics hold; publish the
    payment run and let the pain.001 sink write its file."""
    started = time.perf_counter()
    container = rt.container
    with container.kafka_or_embedded(folder) as kafka:
        ensure_topics(kafka, catalogue(kafka, [SUBSCRIBER, FUND_DECISIONS_CONNECTOR],
                                       reporting=True, benefits=True))
        head = rt.service.recorder.max_notification_id() or 0
        with _progress(rt) as progress, container.relay(CASE_EVENTS) as relay, \
                container.relay(CASE_FACTS) as reporting:
            task = progress.add_task("Relaying events to Kafka", total=head)
            while published := relay.publish_next():
                progress.advance(task, published)
            relay_seconds = time.perf_counter() - started
            task = progress.add_task("Relaying reporting facts", total=head)
            while published := reporting.publish_next():
                progress.advance(task, published)
            by_type = _subscribe(container, folder, head, progress)
        serve_and_query(rt, folder)
        if payments is not None:
            rt.console.print(deliver_payments(rt, payments))
        names = [spec.name for spec in catalogue(kafka, [SUBSCRIBER], reporting=True,
                                                 payments=payments is not None,
                                                 benefits=True)]
        counts = topic_message_counts(kafka, names)
    _print(rt, counts, by_type, head, relay_seconds, kafka, dead_letter_topic(kafka, SUBSCRIBER))


def _subscribe(
    container: Container, folder: Path, head: int, progress: Progress
) -> Counter[str]:
    """A subscriber with its own database that counts events by type, exactly once."""
    path = folder / f"{SUBSCRIBER}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = SQLiteEffectStore(path)
    store.db.execute("CREATE TABLE events_by_type (event_type TEXT PRIMARY KEY, n INTEGER)")

    def count(received: Received, tx: sqlite3.Connection) -> None:
        tx.execute(
            "INSERT INTO events_by_type VALUES (?, 1) "
            "ON CONFLICT (event_type) DO UPDATE SET n = n + 1",
            (received.event_type,),
        )

    task = progress.add_task("Subscriber consuming", total=head)
    stop = threading.Event()
    deadline = time.monotonic() + 120
    with container.consumer(CASE_EVENTS, SUBSCRIBER, count, store) as consumer:
        done = 0
        while done < head and time.monotonic() < deadline and not stop.is_set():
            done += consumer.poll_once(500)
            progress.update(task, completed=done)
    rows = store.db.execute("SELECT event_type, n FROM events_by_type").fetchall()
    store.close()
    return Counter(dict(rows))


def _progress(rt: DemoSession) -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=rt.console,
    )


def _print(
    rt: DemoSession, counts: dict[str, int | None], by_type: Counter[str], head: int,
    relay_seconds: float, kafka: KafkaSettings, dlq: str,
) -> None:
    table = Table(title="Bus: messages per topic", title_justify="left")
    table.add_column("topic")
    table.add_column("messages", justify="right")
    for name, count in counts.items():
        table.add_row(name, "-" if count is None else str(count))
    rt.console.print(table)
    consumed = sum(by_type.values())
    kinds = ", ".join(f"{kind} {n}" for kind, n in by_type.most_common())
    rt.console.print(
        f"Relayed {head} events to {', '.join(kafka.bootstrap_servers)} in {relay_seconds:.1f} s; "
        f"subscriber '{SUBSCRIBER}' took effect of {consumed} (exactly once): {kinds}.\n"
        f"Dead-letter topic of the subscriber: {dlq}."
    )
