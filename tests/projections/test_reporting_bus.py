"""The reporting read model on the real broker: fed by the reporting relay's facts, or rebuilt
from the store, the same tables and figures; after the broker comes back empty the reporting
relay republishes and nothing counts twice."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from bus.broker import EmbeddedBroker
from bus.effects_sqlite import SQLiteEffectStore
from bus.kafka_settings import KafkaSettings
from bus.topics import topic_message_counts
from domain.reference import load_reference_data
from nervenbahn.synthetic import synthetic_history
from projections.framework import open_projection_store, rebuild
from projections.reporting import ReportingProjection, canton_figures, quarterly_figures
from tests.bus.pipeline import Pipeline, pipeline
from tests.bus.waiting import wait_until
from tests.projections import reporting_fixture as fixture

QUARTERS = [f"{year}Q{n}" for year in (2024, 2025, 2026) for n in (1, 2, 3, 4)]


def dump(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute("SELECT * FROM reporting_facts").fetchall())


def all_figures(path: Path) -> list[Any]:
    with sqlite3.connect(path) as db:
        return [(quarterly_figures(db, q), canton_figures(db, q)) for q in QUARTERS]


def seed(line: Pipeline, households: int) -> int:
    """The hand-worked canton plus a synthetic one; the number of events recorded."""
    events = line.service.import_records(fixture.lines()).events
    if households:
        records = synthetic_history(load_reference_data(), households, 11)
        events += line.service.import_records(json.dumps(r) for r in records).events
    return events


def feed(line: Pipeline, projection: ReportingProjection, store: SQLiteEffectStore,
         events: int) -> None:
    """Consume the reporting topic until every fact is applied."""
    with line.container.projection_consumer(projection, store) as consumer:
        wait_until(lambda: _processed(store.db) >= events and consumer.lag() == 0,
                   step=lambda: consumer.poll_once(300), what=f"{events} facts applied")


def test_the_reporting_topic_and_a_rebuild_give_identical_tables_and_figures(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        projection = ReportingProjection.from_settings(line.settings)
        events = seed(line, 120)
        with line.container.relay("case-facts") as relay:
            status = relay.run(threading.Event(), until_caught_up=True)
        with line.container.relay("case-events") as case_relay:
            untouched = case_relay.status()
        store = open_projection_store(projection, tmp_path / "fed.db")
        feed(line, projection, store, events)
        store.close()
        rebuilt = rebuild(projection, line.service, tmp_path / "rebuilt.db")
        topic = line.container.topic("case-facts").name
        messages = fixture.read_all(kafka_settings, topic, events)

    assert (status.position, status.published, status.lag) == (untouched.head, events, 0)
    assert (untouched.position, untouched.published) == (0, 0)  # a position of its own
    assert rebuilt == events
    assert dump(tmp_path / "fed.db") == dump(tmp_path / "rebuilt.db")
    assert len(dump(tmp_path / "rebuilt.db")) == events
    assert all_figures(tmp_path / "fed.db") == all_figures(tmp_path / "rebuilt.db")
    pseudonyms = projection._pseudonyms
    assert pseudonyms is not None
    case_a = fixture.CASES["A"]
    assert {m.key for m in messages} >= {pseudonyms.case(case_a).encode()}
    raw = b"".join(m.value + b"".join(v for _, v in m.headers) for m in messages)
    assert str(case_a).encode() not in raw and case_a.bytes not in raw
    assert {dict(m.headers)["event_type"] for m in messages} == {b"CaseFact"}
    assert all(len(m.key) == 64 for m in messages)


def test_after_the_broker_came_back_empty_the_facts_count_once(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with EmbeddedBroker(tmp_path / "broker") as broker:
        kafka = kafka_settings.with_bootstrap(broker.bootstrap)
        with pipeline(tmp_path, master_key, kafka) as line:
            projection = ReportingProjection.from_settings(line.settings)
            topic = line.container.topic("case-facts").name
            events = seed(line, 0)
            store = open_projection_store(projection, tmp_path / "fed.db")
            with line.container.relay("case-facts") as relay:
                relay.run(threading.Event(), until_caught_up=True)
                feed(line, projection, store, events)

                broker.restart()
                assert relay.ensure_broker_has_history() is True
                relay.run(threading.Event(), until_caught_up=True)
                assert topic_message_counts(kafka, [topic]) == {topic: events}
            feed(line, projection, store, events)
            epochs = store.db.execute("SELECT DISTINCT epoch FROM consumer_offsets").fetchall()
            store.close()
            rebuild(projection, line.service, tmp_path / "rebuilt.db")

    assert len(epochs) == 1  # the consumer followed the relay into its new epoch
    assert dump(tmp_path / "fed.db") == dump(tmp_path / "rebuilt.db")
    assert len(dump(tmp_path / "fed.db")) == events == fixture.EVENTS


def _processed(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM processed_events").fetchone()[0])
