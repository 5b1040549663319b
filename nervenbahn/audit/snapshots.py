"""`audit verify`'s snapshot check: every stored snapshot recomputed from its events.

A snapshot's MAC (`domain.application.snapshots`) keeps an altered snapshot from being used;
this check
also finds one that was written wrong or altered with the key at hand: each snapshot of each
application is compared with the state replayed from the events up to its version (and its
MAC is checked). Every mismatch names the table, the originator id and the version.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import groupby
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.application import Application

from domain.application.snapshots import (
    MacSnapshotStore,
    SnapshotCheck,
    check_snapshots,
    snapshot_from_events,
    stored_snapshot_problem,
)
from nervenbahn.audit.database import AuditDatabase
from nervenbahn.audit.hashing import stored_type

__all__ = ["rewrite_snapshots", "verify_snapshots"]

log = structlog.get_logger("nervenbahn.audit.snapshots")


def verify_snapshots(
    db: AuditDatabase, apps: Sequence[Application[Any]]
) -> tuple[int, list[SnapshotCheck]]:
    """How many snapshots were checked, and those that do not hold."""
    checked, problems = 0, []
    for _, _, check in _checked(db, apps):
        checked += 1
        if check.problem is not None:
            log.error("snapshot does not match its events", **check.to_json())
            problems.append(check)
    return checked, problems


def rewrite_snapshots(db: AuditDatabase, apps: Sequence[Application[Any]]) -> list[SnapshotCheck]:
    """Replace every snapshot that does not hold (no MAC, a MAC that fails, a state other than
    its events') with one taken from the events alone, signed; the ones replaced."""
    replaced = []
    for app, stored_key, check in _checked(db, apps):
        if check.problem is None:
            continue
        store = app.snapshots
        assert isinstance(store, MacSnapshotStore)
        fresh = (snapshot_from_events(app, check.originator_id, check.version)
                 if isinstance(check.originator_id, UUID) and check.version is not None else None)
        db.execute(f"DELETE FROM {check.table} WHERE originator_id = {db.placeholder} "  # noqa: S608
                   f"AND originator_version = {db.placeholder}", stored_key)
        if fresh is not None:
            store.put([fresh])
        log.warning("snapshot rewritten from the events", **check.to_json(),
                    written=fresh is not None)
        replaced.append(check)
    return replaced


def _checked(
    db: AuditDatabase, apps: Sequence[Application[Any]]
) -> Iterator[tuple[Application[Any], tuple[Any, Any], SnapshotCheck]]:
    """Every stored snapshot of the applications, checked: (application, its key as stored
    (originator id, version), the check); each aggregate's events replayed once. A row whose
    values have the wrong type is a problem of its own, naming the columns."""
    for app in apps:
        store = app.snapshots
        if not isinstance(store, MacSnapshotStore) or not db.has_table(store.table):
            continue
        rows = db.fetch(
            f"SELECT originator_id, originator_version, topic, state FROM {store.table} "  # noqa: S608
            "ORDER BY originator_id, originator_version"
        )
        readable = []
        for stored_id, version, topic, state in rows:
            originator_id = _uuid(stored_id)
            problem = stored_snapshot_problem(version, topic, state)
            if originator_id is None:
                problem = "; ".join(filter(None, ["originator_id is not a UUID", problem]))
            if problem is None and originator_id is not None:
                readable.append((originator_id, version, stored_id))
                continue
            shown = str(stored_id) if isinstance(stored_id, UUID) or (
                isinstance(stored_id, str) and stored_id.isprintable() and len(stored_id) <= 64
            ) else f"(not shown: {stored_type(stored_id)})"  # nor control characters to a terminal
            yield app, (stored_id, version), SnapshotCheck(
                store.table, originator_id or shown,
                version if type(version) is int else None, problem)
        for originator_id, group in groupby(readable, key=lambda row: row[0]):
            keys = {version: stored_id for _, version, stored_id in group}
            for check in check_snapshots(app, originator_id, list(keys)):
                yield app, (keys[check.version], check.version), check


def _uuid(value: Any) -> UUID | None:
    """A stored originator id as a UUID (None if it is not one)."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None
