"""No reporting-derived database holds an id anyone can compute from a case id (issue 10).

The reporting read model records, beside its facts, which messages its consumer group has
processed (`processed_events`), and a rebuild records the same for every event it applied.
That table once held the source events' public ids, `uuid5(namespace, "<case id>/<version>")`:
whoever held the read model and a list of case ids (the payments topic's) could probe it for
each case's number of events and, with the region and the highest `sequence` per pseudonym,
link pseudonyms to cases. Here a real SQLite store is relayed to the real broker's reporting
topic; the read model is built both ways (consumed from the topic, rebuilt from the store) and
the BFS statistics sink consumes the same topic through the connector runtime. Every value of
every table of their databases, and their files' raw bytes, are searched for every public event
id of every case id of the store, in every form (text, hex, 16 bytes, integer): none is found.
The same search finds them, and the count-and-region linkage works, on a read model rebuilt the
old way (public ids in `processed_events`).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

from bus.effects_sqlite import SQLiteEffectStore
from bus.envelope import event_id
from bus.kafka_settings import KafkaSettings
from domain.events import CaseHandedOver, CaseOpened
from domain.reference import load_reference_data
from nervenbahn.synthetic import synthetic_history
from projections.framework import Projection, open_projection_store, rebuild
from projections.reporting import ReportingProjection
from projections.reporting_facts import NO_FACT_EVENTS
from tests.bus.pipeline import Pipeline, pipeline
from tests.bus.waiting import wait_until
from tests.connectors.test_bfs_bus import SINK, configure, run
from tests.projections import reporting_fixture as fixture

_HEX = re.compile(rb"[0-9a-f]{32}")
SINK_NAME = "bfs_stored_ids"


class PublicIds:
    """Every public event id of the known cases, in every form a database could hold it."""

    def __init__(self, case_ids: Iterable[UUID], versions: int) -> None:
        self.owner: dict[bytes, tuple[UUID, int]] = {}
        for case_id in case_ids:
            for version in range(1, versions + 1):
                self.owner[event_id(case_id, version).bytes] = (case_id, version)

    def in_bytes(self, data: bytes) -> set[tuple[UUID, int]]:
        """Ids in `data`: as 16 raw bytes, or as hex (with or without dashes, any case)."""
        found = {
            self.owner[data[i : i + 16]]
            for i in range(len(data) - 15)
            if data[i : i + 16] in self.owner
        }
        text = data.lower().replace(b"-", b"")
        for start in range(32):  # every alignment: overlapping hex runs are all tried
            for match in _HEX.finditer(text, start):
                raw = bytes.fromhex(match.group().decode())
                if raw in self.owner:
                    found.add(self.owner[raw])
        return found

    def in_value(self, value: Any) -> set[tuple[UUID, int]]:
        """Ids in one database value (text, blob, integer)."""
        if isinstance(value, int) and 0 <= value < 2**128:
            found = self.in_bytes(value.to_bytes(16, "big"))
            return found if value >= 2**64 else set()  # small integers are counts, not ids
        if isinstance(value, str):
            return self.in_bytes(value.encode())
        if isinstance(value, bytes):
            return self.in_bytes(value)
        return set()


def scan_tables(path: Path, ids: PublicIds) -> dict[str, set[tuple[UUID, int]]]:
    """`table.column` → the public ids found in it, over every table and column."""
    found: defaultdict[str, set[tuple[UUID, int]]] = defaultdict(set)
    with sqlite3.connect(path) as db:
        tables = [
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if hits := ids.in_value(value):
                        found[f"{table}.{column}"] |= hits
    return dict(found)


def scan_files(path: Path, ids: PublicIds) -> set[tuple[UUID, int]]:
    """The public ids anywhere in the database's files (free pages and WAL included)."""
    found: set[tuple[UUID, int]] = set()
    for suffix in ("", "-wal"):
        part = Path(f"{path}{suffix}")
        if part.exists():
            found |= ids.in_bytes(part.read_bytes())
    return found


class PublicIdReporting(ReportingProjection):
    """The read model as it was: a rebuild records each event's public id."""

    def processed_id(self, event: Any) -> UUID | None:
        return Projection.processed_id(self, event)


def event_counts(path: Path, case_ids: Iterable[UUID], versions: int) -> dict[UUID, int]:
    """The attack: a case's number of events, probed from the read model with public ids."""
    with sqlite3.connect(path) as db:
        stored = {row[0] for row in db.execute("SELECT event_id FROM processed_events")}
    counts = {
        case_id: sum(event_id(case_id, v).hex in stored for v in range(1, versions + 1))
        for case_id in case_ids
    }
    return {case_id: count for case_id, count in counts.items() if count}


def count_links(path: Path, counts: dict[UUID, int], regions: dict[UUID, str]) -> dict[UUID, str]:
    """Case → pseudonym, where the case's (region, number of events) is unique among the
    cases and matches exactly one pseudonym's (latest region, highest sequence)."""
    with sqlite3.connect(path) as db:
        latest = db.execute(
            "SELECT f.case_pseudonym, f.sequence, CASE WHEN f.fact = 'handed_over' "
            "THEN f.to_region ELSE f.social_region END FROM reporting_facts f WHERE "
            "f.sequence = (SELECT max(sequence) FROM reporting_facts g "
            "WHERE g.case_pseudonym = f.case_pseudonym)"
        ).fetchall()
    pseudonyms = Counter((region, sequence) for _, sequence, region in latest)
    holder = {(region, sequence): pseudonym for pseudonym, sequence, region in latest}
    cases = Counter((regions[case_id], count) for case_id, count in counts.items())
    return {
        case_id: holder[(regions[case_id], count)]
        for case_id, count in counts.items()
        if cases[(regions[case_id], count)] == 1 == pseudonyms[(regions[case_id], count)]
    }


def recorded(line: Pipeline) -> Iterator[Any]:
    """Every event of the store, in notification order."""
    for notification in line.service.recorder.select_notifications(start=1, limit=10**9):
        yield line.service.mapper.to_domain_event(notification)


def test_no_reporting_database_holds_a_public_event_id(
    tmp_path: Path, master_key: str, kafka_settings: KafkaSettings
) -> None:
    with pipeline(tmp_path, master_key, kafka_settings) as line:
        line.service.import_records(fixture.lines())
        records = synthetic_history(load_reference_data(), 60, 23)
        line.service.import_records(json.dumps(r) for r in records)
        events = list(recorded(line))
        facts = sum(type(e).__name__ not in NO_FACT_EVENTS for e in events)
        with line.container.relay("case-facts") as relay:
            relay.run(threading.Event(), until_caught_up=True)
        projection = ReportingProjection.from_settings(line.settings)
        fed = open_projection_store(projection, tmp_path / "fed.db")
        assert isinstance(fed, SQLiteEffectStore)
        with line.container.projection_consumer(projection, fed) as consumer:
            wait_until(
                lambda: _count(fed.db, "processed_events") >= facts and consumer.lag() == 0,
                step=lambda: consumer.poll_once(300),
                what=f"{facts} facts consumed",
            )
        fed.close()
        rebuild(projection, line.service, tmp_path / "rebuilt.db")
        rebuild(PublicIdReporting.from_settings(line.settings), line.service, tmp_path / "weak.db")
        # a group of its own: on the session broker `connector-bfs` is test_bfs_bus's group
        sink = run(line, tmp_path, configure(tmp_path, SINK, tmp_path / "outbox", SINK_NAME,
                                             closed=True), SINK_NAME)

    versions = max(e.originator_version for e in events) + 5
    case_ids = {e.originator_id for e in events}
    ids = PublicIds(case_ids, versions)
    regions: dict[UUID, str] = {}
    for event in events:
        if isinstance(event, CaseOpened):
            regions[event.originator_id] = event.social_region
        elif isinstance(event, CaseHandedOver):
            regions[event.originator_id] = event.to_region
    bfs = tmp_path / "connectors" / f"{SINK_NAME}.db"
    assert sink.ok and sink.handled == facts
    assert len(case_ids) > 60
    for path in (tmp_path / "fed.db", tmp_path / "rebuilt.db"):
        assert _count(path, "reporting_facts") == facts
        assert _count(path, "processed_events") == facts  # the keyed fact ids, one each
    assert _count(bfs, "processed_events") == facts
    for path in (tmp_path / "fed.db", tmp_path / "rebuilt.db", bfs):
        assert scan_tables(path, ids) == {}, path.name
        assert scan_files(path, ids) == set(), path.name
        assert event_counts(path, case_ids, versions) == {}
    # The same scan finds every fact's public id in a read model rebuilt the old way, and the
    # event counts it gives link cases to pseudonyms by region and highest sequence.
    weak = tmp_path / "weak.db"
    public = {(e.originator_id, e.originator_version) for e in events}
    assert scan_tables(weak, ids) == {"processed_events.event_id": public}
    assert scan_files(weak, ids) >= public
    counts = event_counts(weak, case_ids, versions)
    assert len(counts) == len(case_ids)
    pseudonyms = projection._pseudonyms
    assert pseudonyms is not None
    linked = count_links(weak, counts, regions)
    assert linked  # some cases are unique by region and number of events, and rightly linked
    assert {pseudonyms.case(case_id) for case_id in linked} == set(linked.values())
    assert all(pseudonyms.case(case_id) == pseudonym for case_id, pseudonym in linked.items())


def _count(db: sqlite3.Connection | Path, table: str) -> int:
    if isinstance(db, Path):
        with sqlite3.connect(db) as connection:
            return _count(connection, table)
    return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
