"""`audit verify`'s snapshot check: every stored snapshot recomputed from its events.

A snapshot's MAC (`domain.snapshots`) keeps an altered snapshot from being used; this check
also finds one that was written wrong or altered with the key at hand: each snapshot of each
application is compared with the state replayed from the events up to its version (and its
MAC is checked). Every mismatch names the table, the originator id and the version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.application import Application

from domain.snapshots import MacSnapshotStore, SnapshotCheck, check_snapshot
from nervenbahn.audit.chain import AuditDatabase

__all__ = ["verify_snapshots"]

log = structlog.get_logger("nervenbahn.audit.snapshots")


def verify_snapshots(
    db: AuditDatabase, apps: Sequence[Application[Any]]
) -> tuple[int, list[SnapshotCheck]]:
    """How many snapshots were checked, and those that do not hold."""
    checked, problems = 0, []
    for app in apps:
        store = app.snapshots
        if not isinstance(store, MacSnapshotStore) or not db.has_table(store.table):
            continue
        rows = db.fetch(
            f"SELECT originator_id, originator_version FROM {store.table} "  # noqa: S608
            "ORDER BY originator_id, originator_version"
        )
        for originator_id, version in rows:
            check = check_snapshot(app, UUID(str(originator_id)), int(version))
            checked += 1
            if check.problem is not None:
                log.error("snapshot does not match its events", **check.to_json())
                problems.append(check)
    return checked, problems
