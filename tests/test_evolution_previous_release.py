"""The event store written by the previous release (8bda164, CaseOpened v1) under this one
(CaseOpened v2): what docs/evolution.md promises, on the real stored bytes.

Every case replays; each opening comes back as v2 with `household_structure` None (upcast on
read: eventsourcing's `class_version` and `upcast_v1_v2`); new events are appended after the
old ones; the relay publishes the old openings as v2 Avro; the audit's hash chains and signed
checkpoint still verify, since upcasting never rewrites a stored byte. The fixture and how it
was made: tests/fixtures/previous_release/README.md.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import fastavro
import pytest
from eventsourcing.utils import get_topic
from kafka import KafkaConsumer, TopicPartition

from bus.kafka_settings import KafkaSettings
from bus.topics import catalogue, ensure_topics
from bus.wire import HEADER, schema_id_of
from domain.application.cases import CaseService
from domain.commands import parse_command
from domain.events import CaseOpened
from nervenbahn.config import Settings, load_settings
from nervenbahn.container import Container, build_service, close_service
from nervenbahn.keyfiles import store_key_folder
from schemas import version_path
from tests.bus.waiting import wait_until

FIXTURE = Path(__file__).parent / "fixtures" / "previous_release" / "prev-8bda164"
ADMINISTRATOR = {"user_id": "admin-so", "role": "administrator", "organisation": "so-canton"}
V2 = json.loads(version_path("CaseOpened", 2).read_text())
OLD_EVENTS = 35
"""Case events the previous release stored (4 households of the seeded demo)."""


@pytest.fixture
def environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A copy of the previous release's store, its keys where this release looks for them."""
    shutil.copytree(FIXTURE / "store", tmp_path / "store")
    database = tmp_path / "store" / "nervenbahn.db"
    keys = store_key_folder(tmp_path / "keys", database)
    shutil.copytree(FIXTURE / "keys", keys)
    (keys / "store").write_text(f"{database.resolve()}\n")
    monkeypatch.setenv("NERVENBAHN_KEY_DIR", str(tmp_path / "keys"))
    return {"NERVENBAHN_STORE": f"sqlite:///{database}",
            "NERVENBAHN_KEY_DIR": str(tmp_path / "keys"), "NERVENBAHN_LOG_LEVEL": "warning"}


@pytest.fixture
def settings(environ: dict[str, str]) -> Settings:
    """This release's settings on the copied store."""
    return load_settings(environ)


@pytest.fixture
def service(settings: Settings) -> Iterator[CaseService]:
    """This release's case service on the copied store."""
    built = build_service(settings)
    yield built
    close_service(built)


def stored_rows(environ: dict[str, str]) -> list[tuple[Any, ...]]:
    """Every stored case event's row, bytes as they are on disk."""
    db = sqlite3.connect(environ["NERVENBAHN_STORE"].removeprefix("sqlite:///"))
    try:
        return db.execute("SELECT originator_id, originator_version, topic, state "
                          "FROM stored_events ORDER BY rowid").fetchall()
    finally:
        db.close()


def case_ids(service: CaseService) -> list[uuid.UUID]:
    """Every case of the store, by its opening."""
    openings = service.recorder.select_notifications(
        start=None, limit=10**6, topics=[get_topic(CaseOpened)])
    return [uuid.UUID(str(n.originator_id)) for n in openings]


def command(name: str, **data: Any) -> Any:
    """A command by the canton's administrator (may act on any case)."""
    return parse_command(name, {"actor": ADMINISTRATOR, "correlation_id": str(uuid.uuid4()),
                                **data})


def test_the_fixture_holds_version_1_openings_and_other_events() -> None:
    rows = stored_rows({"NERVENBAHN_STORE": f"sqlite:///{FIXTURE / 'store' / 'nervenbahn.db'}"})
    topics = {topic for _, _, topic, _ in rows}

    assert len(rows) == OLD_EVENTS
    assert len(topics) >= 8
    openings = [state for _, _, topic, state in rows if topic == get_topic(CaseOpened)]
    assert len(openings) == 4
    assert all(b"household_structure" not in state and b"class_version" not in state
               for state in openings)


def test_every_case_replays_and_its_opening_is_upcast_to_v2(service: CaseService) -> None:
    ids = case_ids(service)
    replayed = 0
    for case_id in ids:
        case = service.get_case(case_id)
        events = list(service.events.get(case_id))
        assert case.version == len(events) == events[-1].originator_version
        opened = events[0]
        assert isinstance(opened, CaseOpened)
        assert opened.household_structure is None
        replayed += len(events)
    assert (len(ids), replayed) == (4, OLD_EVENTS)


def test_new_events_are_appended_after_the_old_without_rewriting_them(
    environ: dict[str, str], service: CaseService
) -> None:
    before = stored_rows(environ)
    supported = next(cid for cid in case_ids(service)
                     if service.get_case(cid).phase == "supported")
    due = (service.get_case(supported).modified_on + timedelta(days=400)).date().isoformat()

    service.execute(command("agree_goal", case_id=str(supported), category="employment",
                            title="Bewerbungen", due_date=due))
    opened = service.execute(command("open_case", municipality_bfs=2581, household_size=1,
                                     household_structure="one_person",
                                     applicant=_applicant()))

    after = stored_rows(environ)
    assert after[:OLD_EVENTS] == before
    assert len(after) == OLD_EVENTS + 2
    # version 3 since the established identity (version 2: the household structure)
    assert b'"class_version":3' in after[-1][3] and b'"one_person"' in after[-1][3]
    assert service.get_case(supported).version == len(list(service.events.get(supported)))
    (new_opening,) = service.events.get(opened.case_id)
    assert isinstance(new_opening, CaseOpened)
    assert new_opening.household_structure == "one_person"
    audited = _cli(environ, "audit", "verify")
    assert audited.returncode == 0, audited.stdout + audited.stderr


def test_the_relay_publishes_the_old_openings_as_v2_avro(
    settings: Settings, service: CaseService, kafka_settings: KafkaSettings
) -> None:
    ensure_topics(kafka_settings, catalogue(kafka_settings))
    container = Container(settings, kafka=kafka_settings, service=service)
    try:
        relay = container.relay("case-events")
        while relay.publish_next():
            pass
        registry = container.registry
        topic = container.topic("case-events").name
        messages = _read_all(kafka_settings, topic, OLD_EVENTS)
    finally:
        container.close()

    openings = [value for value, kind in messages if kind == "CaseOpened"]
    assert len(messages) == OLD_EVENTS and len(openings) == 4
    for value in openings:
        assert _same_schema(registry.schema_by_id(schema_id_of(value)), V2)
        record = fastavro.schemaless_reader(io.BytesIO(value[HEADER.size:]),
                                            fastavro.parse_schema(V2), None)
        assert isinstance(record, dict) and record["household_structure"] is None


def _same_schema(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(fastavro.schema.to_parsing_canonical_form(a)
                == fastavro.schema.to_parsing_canonical_form(b))


def _read_all(kafka: KafkaSettings, topic: str, expected: int) -> list[tuple[bytes, str]]:
    """(value, event_type header) of every message on `topic`, once it holds `expected`."""
    reader = KafkaConsumer(**kafka.consumer_kwargs(None, "evolution-test"))
    found: list[tuple[bytes, str]] = []

    def read() -> None:
        for records in reader.poll(300).values():
            found.extend((r.value, dict(r.headers)["event_type"].decode()) for r in records)

    try:
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic)]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        wait_until(lambda: len(found) >= expected, step=read, what=f"{expected} on {topic}")
    finally:
        reader.close()
    return found


def _applicant() -> dict[str, str]:
    return {"given_name": "Lina", "family_name": "Beispiel", "ahvn13": "756.9217.0769.85",
            "birth_date": "1990-02-03", "street": "Hauptgasse 1", "postal_code": "4600",
            "town": "Olten"}


def _cli(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """This release's CLI on the store, in a process of its own."""
    return subprocess.run([sys.executable, "-m", "nervenbahn", *args],
                          env={**os.environ, **environ}, capture_output=True, text=True,
                          timeout=120, check=False)
