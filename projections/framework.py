"""Projections: read models, each with tables of its own, kept up to date by applying events.

A projection is fed two ways that must give the same tables (tested):
- incrementally, from the bus: a consumer group `projection-<name>` whose handler applies each
  event in the transaction that also records the event id and the offsets (exactly once);
- by a rebuild, straight from the event store's notification log, into a fresh database that
  replaces the old one; the rebuild records, for every event it applied, the id the consumer
  will meet it under (`Projection.processed_id`), so that the consumer, which then starts from
  the beginning of the topic, skips them all.

Where the tables live (a SQLite file each, or one PostgreSQL schema): `projections.storage`.

A rebuild hands the projection a batch of the log at a time (`Projection.apply_batch`), in one
transaction with the ids it records (in one statement, `EffectStore.mark_all`) and the id of
the batch's last notification: a crash mid-batch leaves none of it. The projections read what
they need once per batch (the versions of its cases, `CaseVersions`; the reporting
projection's regions) and write in bulk. Measured (22,404 events, SQLite, 2 busy cores): the
rebuilds went from 0.05/0.06/0.04x to 0.09/0.12/0.06x the raw read of the notifications. Of
the CPU time per event that remains, decoding the stored event through the application's
mapper takes about 41 µs (json alone 23) against 6 µs for the raw read itself: with it, no
rebuild can pass about 0.13x.
"""

from __future__ import annotations

import gc
import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, Self
from uuid import UUID

from pydantic import SecretStr

from bus.effects import EffectStore
from bus.effects_sqlite import SQLiteEffectStore
from bus.envelope import event_id
from domain.application.ports import NotificationLog
from projections.errors import ProjectionError
from projections.storage import (
    READ_MODEL_PROGRESS,
    PostgresReadModels,
    PostgresReadModelStore,
    ReadModelTarget,
    SQLConnection,
    execute_many,
    read_model_built,
    read_model_connection,
    read_notification_id,
    record_progress,
)
from schemas.sql import (
    Component,
    migrate_sqlite,
    placeholder,
    recorded_versions_postgres,
    recorded_versions_sqlite,
)

__all__ = [
    "CaseRowProjection",
    "CaseVersions",
    "Projection",
    "ProjectionError",
    "ProjectionSettings",
    "applied_notification_id",
    "catch_up",
    "open_projection_store",
    "rebuild",
]


class ProjectionSettings(Protocol):
    """What projections may take from the installation's settings, and nothing more
    (`nervenbahn.config.Settings` has it; projections never import the composition root).
    Read only by a projection that needs it: reading a key may create its file."""

    @property
    def reporting_key(self) -> SecretStr | None:
        """The key that pseudonymises case ids (base64 of 32 bytes), if configured."""
        ...


class Projection(ABC):
    """A read model: its tables, and how each event changes them."""

    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]
    """The projection's tables (the first one tells whether the read model is built)."""
    dataset: ClassVar[str] = "case-events"
    """The dataset whose topic keeps it up to date (`case-facts`: the reporting topic)."""
    source: ClassVar[Literal["cases", "benefits"]] = "cases"
    """The store whose notification log a rebuild reads: the case store's, or the benefits
    store's own events table (`benefits_events`); the composition root hands `rebuild` the
    matching service, each a `NotificationLog` of its own table only."""

    @classmethod
    def from_settings(cls, settings: ProjectionSettings) -> Self:
        """The projection as the composition root configures it from the installation's
        settings (most need nothing; the reporting projection takes the reporting key)."""
        return cls()

    group_suffix: str = ""
    """What the composition root adds to the group's name: "" where every instance of
    `serve` shares the read model (one group splits the partitions), `.<instance>` where each
    instance keeps a read model of its own (each reads every partition)."""

    @property
    def group(self) -> str:
        """The consumer group that feeds this projection from the bus."""
        return f"projection-{self.name}{self.group_suffix}"

    migrations: ClassVar[Component]
    """The projection's tables, as numbered migrations (`schemas.sql`)."""

    @abstractmethod
    def apply(self, event: Any, tx: SQLConnection) -> None:
        """Apply one event through `tx` (events arrive in order per case)."""

    def apply_batch(self, events: Sequence[Any], tx: SQLConnection) -> None:
        """Apply events, in order, through `tx`, with the tables ending as `apply` one by one
        leaves them (a rebuild hands over a batch of the notification log). By default one by
        one; a projection overrides it to read once and write in bulk per batch."""
        for event in events:
            self.apply(event, tx)

    def handle(self, received: Any, tx: SQLConnection) -> None:
        """Apply a decoded event from the bus: by default, apply the decoded event."""
        self.apply(received.event, tx)

    def consume(self, received: Any, tx: SQLConnection) -> None:
        """The handler of the projection's consumer: handle the event, and record in the same
        transaction the read model's progress (`projections.storage.record_progress`)."""
        self.handle(received, tx)
        record_progress(tx, self.name, self.recorded_at(received.event), datetime.now(UTC))

    def recorded_at(self, event: Any) -> datetime | None:
        """When the event was recorded, as precisely as the read model may know it (its
        freshness, `X-Read-Model-As-Of`): by default the case event's recorded time."""
        moment = getattr(event, "timestamp", None)
        return moment if isinstance(moment, datetime) else None

    def processed_id(self, event: Any) -> UUID | None:
        """The id under which the projection's dataset carries `event` (the consumer records and
        skips by it), or None if the dataset carries nothing for it. By default the event's
        public id (the case-events topic's `event_id`); the reporting projection, fed by the
        reporting topic, answers the keyed fact id instead, so that its database holds no id
        anyone could compute from a case id."""
        return event_id(event.originator_id, event.originator_version)


class CaseRowProjection(Projection):
    """A projection with a row per case in `case_table` that holds the version of the case's
    last event applied: an event at or below it (met again: re-sent, or replayed past what
    dedup knows) is ignored, so that the row never moves backwards. The versions are read and
    written once per batch (`CaseVersions`)."""

    case_table: ClassVar[str]

    def apply(self, event: Any, tx: SQLConnection) -> None:
        """Apply one event of a case; one at or below the version the case holds is ignored."""
        self.apply_batch([event], tx)

    def apply_batch(self, events: Sequence[Any], tx: SQLConnection) -> None:
        """Apply events of cases in order, each ignored if at or below the version its case
        holds by then."""
        versions = CaseVersions(tx, self.case_table, events)
        for event in events:
            case_id = str(event.originator_id)
            if not versions.applied(case_id, event):
                self.change(event, case_id, tx)
                versions.record(case_id, event)
        versions.write(tx)

    @abstractmethod
    def change(self, event: Any, case_id: str, tx: SQLConnection) -> None:
        """What a new event of case `case_id` changes in the tables (the version aside)."""


def open_projection_store(projection: Projection, target: ReadModelTarget) -> EffectStore:
    """The projection's store with its tables (and the consumer's bookkeeping tables): a
    SQLite file, or the read models' PostgreSQL schema."""
    if isinstance(target, PostgresReadModels):
        store = PostgresReadModelStore(target)
        store.migrate(READ_MODEL_PROGRESS)
        store.migrate(projection.migrations)
        return store
    sqlite_store = SQLiteEffectStore(target)
    migrate_sqlite(sqlite_store.db, READ_MODEL_PROGRESS)
    migrate_sqlite(sqlite_store.db, projection.migrations)
    return sqlite_store


REBUILD_CACHE_MIB = 64
"""The page cache of a SQLite rebuild's connection, in MiB (at most this much more memory
while a read model is rebuilt; `_private_writes`)."""


REBUILD_GC_THRESHOLD = 50_000
"""Allocations (less deallocations) after which a rebuild's cycle collector looks at the
youngest generation (Python's default: 700). Reference counting frees what a batch no longer
needs; the collector finds only cycles, of which a rebuild makes few: the reporting rebuild of
200,000 events (benchmarks/scale.py's store) peaked at 201 MB with either threshold."""


def rebuild(
    projection: Projection,
    source: NotificationLog,
    target: ReadModelTarget,
    *,
    batch_size: int = 2000,
    progress: Callable[[int, int], object] = lambda done, total: None,
) -> int:
    """Rebuild the projection from the event store's notification log (`source`: the case
    service's, or the benefits service's for a projection whose `Projection.source` is
    `benefits`): into a fresh SQLite database that then replaces the one at `target`, or, in
    PostgreSQL, by emptying and refilling its tables in one transaction (its group's
    bookkeeping forgotten too).

    Stop the projection's consumer first: the old read model is replaced when the rebuild is
    complete (never half-way). Returns the number of events applied.

    While it runs, the cycle collector looks at the youngest generation after
    REBUILD_GC_THRESHOLD allocations instead of 700 (restored afterwards). Each batch's
    decoded events (tens of thousands of objects) outlive the young generations: they were
    walked again every 700 allocations, and the full collections that followed every few
    batches walked the whole process (the container, the reference data, the modules):
    8-19 µs an event, a sixth of a rebuild; now under 1 µs.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(REBUILD_GC_THRESHOLD, *thresholds[1:])
    try:
        return _rebuild(projection, source, target, batch_size, progress)
    finally:
        gc.set_threshold(*thresholds)


def _rebuild(
    projection: Projection,
    source: NotificationLog,
    target: ReadModelTarget,
    batch_size: int,
    progress: Callable[[int, int], object],
) -> int:
    if isinstance(target, PostgresReadModels):
        store = PostgresReadModelStore(target)
        try:
            store.migrate(READ_MODEL_PROGRESS)
            store.migrate(projection.migrations)
            with store.transaction() as tx:
                store.forget(tx, projection)
                return _refill(
                    projection, source, store, lambda: nullcontext(tx), batch_size, progress
                )
        finally:
            store.close()
    fresh = target.with_name(target.name + ".rebuild")
    _remove(fresh)
    sqlite_store = open_projection_store(projection, fresh)
    assert isinstance(sqlite_store, SQLiteEffectStore)  # a file: always
    _private_writes(sqlite_store.db)
    try:
        with sqlite_store.marks_in_bulk():  # a fresh file: no one reads it meanwhile
            done = _refill(
                projection, source, sqlite_store, sqlite_store.transaction, batch_size, progress
            )
        _durable(sqlite_store.db)
    finally:
        sqlite_store.close()
    _fsync(fresh)
    _remove(target)
    os.replace(fresh, target)
    _fsync(fresh.parent)
    return done


def _private_writes(db: sqlite3.Connection) -> None:
    """A rebuild's fresh file is no one else's until it is renamed over the read model, and
    one that a crash left half-written is removed by the next rebuild: it is written without
    a write-ahead log and without a sync per batch (the rollback journal in memory, so that a
    failed batch still rolls back), and with a page cache of REBUILD_CACHE_MIB (SQLite's
    default, 2 MiB, is outgrown at once and pages are read back from the operating system).
    At 1 million events the region rebuild ran at 13,200-13,500 events/s, falling as the
    tables grew; it now runs at 18,900, flat from the first 100 thousand events to the last
    (the WAL wrote each page twice, once more at each checkpoint)."""
    db.execute(f"PRAGMA cache_size = -{REBUILD_CACHE_MIB * 1024}")
    db.execute("PRAGMA journal_mode = MEMORY")
    db.execute("PRAGMA synchronous = OFF")


def _durable(db: sqlite3.Connection) -> None:
    """The rebuilt file back to what its readers and consumers expect (WAL, synced at
    commit); `_fsync` then makes it durable before it replaces the read model."""
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA journal_mode = WAL")


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's: a rename in it) data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def applied_notification_id(
    projection: Projection, target: ReadModelTarget, *, timed: bool = False
) -> int | None:
    """The id of the last notification of the event store that the read model at `target`
    applied, if it can go on from there (`catch_up`); None if it must be rebuilt: it is not
    built, its tables are not at this release's versions (its schema changed), or no rebuild
    recorded an id (built by an older release). Reads only: takes no turn, writes nothing.
    `timed`: each statement at most the target's read timeout (a server's reader asks)."""
    if not read_model_built(target, projection.tables[0], timed=timed):
        return None
    with read_model_connection(target, timed=timed) as db:
        versions = (
            recorded_versions_sqlite(db)
            if isinstance(db, sqlite3.Connection)
            else recorded_versions_postgres(db, target.schema)  # type: ignore[arg-type, union-attr]
        )
        components = (READ_MODEL_PROGRESS, projection.migrations)
        if any(versions.get(component.name) != component.latest for component in components):
            return None
        return read_notification_id(db, projection.name)


def catch_up(
    projection: Projection,
    source: NotificationLog,
    target: ReadModelTarget,
    *,
    after: int,
    batch_size: int = 2000,
) -> int:
    """Apply to the built read model at `target` only the notifications of `source` after the
    id `after` (the last one it applied: `applied_notification_id`), each batch in one
    transaction with the progress and the id of its last notification (in PostgreSQL, all in
    one transaction). Hold the read model's turn (`rebuild` must not run meanwhile). Returns
    the number of events applied."""
    store = open_projection_store(projection, target)
    try:
        if isinstance(store, PostgresReadModelStore):
            with store.transaction() as tx:
                return _refill(projection, source, store, lambda: nullcontext(tx), batch_size,
                               lambda done, total: None, after=after)
        return _refill(projection, source, store, store.transaction, batch_size,
                       lambda done, total: None, after=after)
    finally:
        store.close()


def _refill(
    projection: Projection,
    source: NotificationLog,
    store: EffectStore,
    transaction: Callable[[], AbstractContextManager[Any]],
    batch_size: int,
    progress: Callable[[int, int], object],
    *,
    after: int = 0,
) -> int:
    """Apply every event of the store's notification log after the id `after`, recording the
    id the projection's dataset carries it under (`Projection.processed_id`; one already
    recorded is kept when going on from `after`), and the read model's progress with the id
    of the last notification applied."""
    total = source.max_position()
    position, done = after, 0
    while notifications := source.notifications(gt=position, limit=batch_size):
        events = [source.decode(notification) for notification in notifications]
        with transaction() as tx:
            projection.apply_batch(events, tx)
            processed = [pid for event in events
                         if (pid := projection.processed_id(event)) is not None]
            if after:
                processed = [pid for pid in processed
                             if not store.seen(tx, projection.group, pid)]
            store.mark_all(tx, projection.group, processed)
            moments = [moment for event in events
                       if (moment := projection.recorded_at(event)) is not None]
            record_progress(tx, projection.name, max(moments, default=None),
                            datetime.now(UTC), notification_id=notifications[-1].id)
        position = notifications[-1].id
        done += len(notifications)
        progress(done, max(total, done))
    return done


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def already_applied(tx: SQLConnection, table: str, event: Any, *, key: str = "case_id") -> bool:
    """True if `table`'s row of the event's aggregate (keyed by column `key`: a case id by
    default) holds its version or a later one: an old event met again (re-sent, or replayed
    past what dedup knows) must not move the row backwards, so the projection ignores it."""
    p = placeholder(tx)
    row = tx.execute(
        f"SELECT version FROM {table} WHERE {key} = {p}",  # noqa: S608 - our table names
        (str(event.originator_id),),
    ).fetchone()
    return row is not None and int(row[0]) >= event.originator_version


class CaseVersions:
    """The version each case's row in `table` holds (column `key`, a case id by default), read
    once for a batch of events and written once at its end: `already_applied` and the
    `UPDATE … SET version` after each event, in bulk. A case without a row gets one only from
    its opening (`CaseOpened`, whose handler inserts it at version 1)."""

    _CHUNK = 500
    """Ids per `IN (…)` query (well under either backend's limit of parameters)."""

    def __init__(
        self, tx: SQLConnection, table: str, events: Sequence[Any], *, key: str = "case_id"
    ) -> None:
        self._table, self._key = table, key
        self._versions: dict[str, int] = {}
        self._changed: set[str] = set()
        ids = list(dict.fromkeys(str(event.originator_id) for event in events))
        p = placeholder(tx)
        for start in range(0, len(ids), self._CHUNK):
            chunk = ids[start:start + self._CHUNK]
            rows = tx.execute(
                f"SELECT {key}, version FROM {table} "  # noqa: S608 - our names
                f"WHERE {key} IN ({', '.join([p] * len(chunk))})",
                chunk,
            )
            self._versions.update((str(row[0]), int(row[1])) for row in rows)

    def applied(self, case_id: str, event: Any) -> bool:
        """True if the case's row holds the event's version or a later one (an old event met
        again must not move the row backwards: the projection ignores it)."""
        version = self._versions.get(case_id)
        return version is not None and version >= event.originator_version

    def record(self, case_id: str, event: Any) -> None:
        """The event was applied: its version is the row's (if the case has a row by now)."""
        if case_id in self._versions or type(event).__name__ == "CaseOpened":
            self._versions[case_id] = event.originator_version
            self._changed.add(case_id)

    def write(self, tx: SQLConnection) -> None:
        """Write the versions of the rows the batch changed, one statement for all."""
        p = placeholder(tx)
        statement = (f"UPDATE {self._table} SET version = {p} "  # noqa: S608 - our names
                     f"WHERE {self._key} = {p}")
        execute_many(tx, statement,
                     [(self._versions[case_id], case_id) for case_id in self._changed])


def update_case_row(tx: SQLConnection, table: str, case_id: str, **columns: object) -> None:
    """`UPDATE table SET columns… WHERE case_id = …` (table and column names are the
    projection's own, never input)."""
    update_row(tx, table, ("case_id", case_id), **columns)


def update_row(
    tx: SQLConnection, table: str, where: tuple[str, str], **columns: object
) -> None:
    """`UPDATE table SET columns… WHERE key = value` for `where` = (key, value) (table and
    column names are the projection's own, never input)."""
    p = placeholder(tx)
    key, value = where
    assignments = ", ".join(f"{column} = {p}" for column in columns)
    tx.execute(
        f"UPDATE {table} SET {assignments} WHERE {key} = {p}",  # noqa: S608
        (*columns.values(), value),
    )
