"""Projections: read models, each with tables of its own, kept up to date by applying events.

A projection is fed two ways that must give the same tables (tested):
- incrementally, from the bus: a consumer group `projection-<name>` whose handler applies each
  event in the transaction that also records the event id and the offsets (exactly once);
- by a rebuild, straight from the event store's notification log, into a fresh database that
  replaces the old one; the rebuild records every event id it applied, so that the consumer,
  which then starts from the beginning of the topic, skips them all.
"""

from __future__ import annotations

import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

from bus.effects import SQLiteEffectStore
from bus.envelope import event_id
from domain.service import CaseService

__all__ = ["Projection", "open_projection_store", "rebuild"]


class Projection(ABC):
    """A read model: its tables, and how each event changes them."""

    name: ClassVar[str]
    feed: ClassVar[str] = "case-events"
    """The dataset of the topic that feeds it incrementally (`case-facts`: the reporting topic)."""

    @classmethod
    def from_settings(cls, settings: Any) -> Self:
        """The projection as the composition root configures it from `nervenbahn.config.
        Settings` (most need nothing; the reporting projection takes the reporting key)."""
        return cls()

    @property
    def group(self) -> str:
        """The consumer group that feeds this projection from the bus."""
        return f"projection-{self.name}"

    @abstractmethod
    def create_tables(self, db: sqlite3.Connection) -> None:
        """Create the projection's tables if they do not exist."""

    @abstractmethod
    def apply(self, event: Any, tx: sqlite3.Connection) -> None:
        """Apply one event through `tx` (events arrive in order per case)."""

    def handle(self, received: Any, tx: sqlite3.Connection) -> None:
        """The handler of the projection's consumer: by default, apply the decoded event."""
        self.apply(received.event, tx)


def open_projection_store(projection: Projection, path: Path) -> SQLiteEffectStore:
    """The projection's database with its tables (and the consumer's bookkeeping tables)."""
    store = SQLiteEffectStore(path)
    projection.create_tables(store.db)
    return store


def rebuild(
    projection: Projection,
    service: CaseService,
    path: Path,
    *,
    batch_size: int = 2000,
    progress: Callable[[int, int], object] = lambda done, total: None,
) -> int:
    """Rebuild the projection from the event store into a fresh database at `path`.

    Stop the projection's consumer first: the old database is replaced when the rebuild is
    complete (never half-way). Returns the number of events applied.
    """
    fresh = path.with_name(path.name + ".rebuild")
    _remove(fresh)
    store = open_projection_store(projection, fresh)
    total = service.recorder.max_notification_id() or 0
    position = done = 0
    try:
        while notifications := service.recorder.select_notifications(
            start=position + 1, limit=batch_size
        ):
            with store.transaction() as tx:
                for notification in notifications:
                    event = service.mapper.to_domain_event(notification)
                    projection.apply(event, tx)
                    store.mark(
                        tx,
                        projection.group,
                        event_id(event.originator_id, event.originator_version),
                    )
            position = notifications[-1].id
            done += len(notifications)
            progress(done, max(total, done))
    finally:
        store.close()
    _remove(path)
    os.replace(fresh, path)
    return done


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
