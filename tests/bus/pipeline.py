"""A store, its bus and a counting consumer, as the end-to-end tests need them."""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from kafka import KafkaConsumer, TopicPartition

from bus.consumer import Consumer, Received
from bus.effects_sqlite import SQLiteEffectStore
from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics
from domain.application.cases import CaseService
from domain.commands import parse_command, swiss_today
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import Container, build_service, close_service
from nervenbahn.testing import applicant
from tests.bus.waiting import wait_until

CASEWORKER = {"user_id": "cw-olten-01", "role": "caseworker", "organisation": "so-olten"}


def store_settings(
    tmp_path: Path, master_key: str, environ: Mapping[str, str] | None = None
) -> Settings:
    """A SQLite store of the test's own (and any other variables in `environ`)."""
    return load_settings(
        {
            "NERVENBAHN_STORE": f"sqlite:///{tmp_path / 'store.db'}",
            "NERVENBAHN_MASTER_KEY": master_key,
            **(environ or {}),
        }
    )


def command(name: str, **data: Any) -> Any:
    """A command by a caseworker of Olten."""
    return parse_command(name, {"actor": CASEWORKER, "correlation_id": str(uuid.uuid4()), **data})


def open_supported_case(service: CaseService, n: int = 0) -> UUID:
    """Open, assess and grant a case: three events."""
    person = applicant(n, given_name="Nora", family_name=f"Beispiel{n}",
                       birth_date="1980-01-01", street="Weg 1")
    opened = service.execute(
        command("open_case", municipality_bfs=2581, household_size=1, applicant=person)
    )
    service.execute(
        command(
            "complete_assessment",
            case_id=str(opened.case_id),
            needs=["financial"],
            employability="employable",
        )
    )
    service.execute(
        command(
            "grant_support",
            case_id=str(opened.case_id),
            support_from=swiss_today().replace(day=1).isoformat(),
            housing="1200",
            health_insurance="350",
            income="0",
        )
    )
    return opened.case_id


class EffectCounter:
    """A consumer's effect: one row per handled event, no unique constraint, so that a
    duplicate effect would show as a second row."""

    def __init__(self, path: Path) -> None:
        self.store = SQLiteEffectStore(path)
        self.store.db.execute(
            "CREATE TABLE IF NOT EXISTS effects (event_id TEXT, event_type TEXT, case_id TEXT, "
            "version INTEGER)"
        )

    def handle(self, received: Received, tx: sqlite3.Connection) -> None:
        event = received.event
        tx.execute(
            "INSERT INTO effects VALUES (?, ?, ?, ?)",
            (
                str(received.event_id),
                received.event_type,
                str(event.originator_id),
                event.originator_version,
            ),
        )

    def rows(self) -> list[tuple[str, str, str, int]]:
        return self.store.db.execute(
            "SELECT event_id, event_type, case_id, version FROM effects ORDER BY rowid"
        ).fetchall()

    def count(self) -> int:
        return int(self.store.db.execute("SELECT count(*) FROM effects").fetchone()[0])


@dataclass
class Pipeline:
    """Store → relay → broker → consumer, each piece real."""

    settings: Settings
    service: CaseService
    container: Container

    def consumer(self, group: str, counter: EffectCounter, **options: Any) -> Consumer:
        return self.container.consumer(
            "case-events", group, counter.handle, counter.store, **options
        )

    def recorded(self) -> set[tuple[str, int]]:
        """(case id, version) of every event in the store."""
        notifications = self.service.recorder.select_notifications(start=1, limit=10**9)
        return {(str(n.originator_id), n.originator_version) for n in notifications}


@contextmanager
def pipeline(
    tmp_path: Path, master_key: str, kafka: KafkaSettings,
    environ: Mapping[str, str] | None = None,
) -> Iterator[Pipeline]:
    """A store with its bus; topics created (settings: the store, and `environ`)."""
    settings = store_settings(tmp_path, master_key, environ)
    service = build_service(settings)
    bus = Container(settings, kafka=kafka, service=service)
    ensure_topics(kafka, catalogue(kafka))
    try:
        yield Pipeline(settings, service, bus)
    finally:
        bus.close()
        close_service(service)


def topic_contents(kafka: KafkaSettings, topic: str) -> tuple[Counter[str], set[str]]:
    """Every message on `topic`, read to its end: how often each event id occurs, and the
    relay epochs stamped."""
    reader = KafkaConsumer(**kafka.consumer_kwargs(None, "topic-contents"))
    ids: Counter[str] = Counter()
    epochs: set[str] = set()

    def read() -> None:
        for records in reader.poll(300).values():
            for record in records:
                headers = dict(record.headers or [])
                ids[headers["event_id"].decode()] += 1
                epochs.add(headers["relay_epoch"].decode())

    try:
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic)]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        ends = reader.end_offsets(partitions)
        wait_until(lambda: all(reader.position(tp) >= ends[tp] for tp in partitions),
                   step=read, what=f"the end of {topic}")
    finally:
        reader.close()
    return ids, epochs
