"""Opening a PostgreSQL store's event tables one process at a time, the first time only.

eventsourcing creates its tables when an application opens (CREATE TYPE, CREATE TABLE and
CREATE INDEX … IF NOT EXISTS, each recorder in transactions of its own). Run by many processes
on a fresh schema at once, these statements collide in PostgreSQL's catalogue: 17 of 20
processes failed with "deadlock detected" or "tuple concurrently updated" (issue 12, finding 4).
`IF NOT EXISTS` does not help; only taking turns does.

So the composition root opens each service (`build_service`, `build_payment_service`) through
`opened_in_turn`: when the schema does not yet record the service's tables as made
(`schema_versions`, component `CASE_TABLES` / `PAYMENT_TABLES` /
`BENEFIT_TABLES`), the process takes a
session-level advisory lock, opens the service (its recorders' `create_table`, the snapshot
recorder's, the key store's migration), records the component and lets go. A store whose
tables are recorded costs one read and takes no lock, and opens its service without any DDL
(eventsourcing's `CREATE_TABLE` off, `nervenbahn.eventstore`), so the everyday start stays
concurrent and never waits behind the writers' table locks.

Why here and not in the recorders' `create_table`: a service opens more than its chained
recorder — eventsourcing's own snapshot recorder and composite types, and the key store — and
only the composition root sees all of them; a lock in one recorder would leave the others
racing. The lock is not the migration runner's (`schemas.sql`): that one is transaction-scoped
and taken inside the key store's migration on another connection of the same process, which
would wait for this session's lock for ever. Two locks stay deadlock-free because they are only
ever taken in one order: this one first, the runner's inside it.

A component's version is bumped (a new `Migration` with no statements) when a release changes
the tables its recorders create, so that stores opened by the older release are opened in turn
once more.

SQLite has no advisory locks: two processes opening a fresh SQLite store at once (two `serve`
started together) met "database is locked" while the first made its tables and switched the
file to WAL. They take turns on an exclusive `flock` of a lock file beside the database
(`<store>.opening`, empty, 0600), held only while the service opens (`sqlite_turn`). The same
turn guards building a missing read model (`nervenbahn.container.Container.ensure_read_model`):
the second process finds it built and does not build it again.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

from domain.errors import NervenbahnError
from nervenbahn.config import StoreConfig
from nervenbahn.private import private_file
from schemas.sql import Component, Migration, migrate_postgres, recorded_versions_postgres

__all__ = [
    "BENEFIT_TABLES", "CASE_TABLES", "OPEN_LOCK", "PAYMENT_TABLES", "TurnNotTakenError",
    "opened_in_turn", "sqlite_turn",
]

T = TypeVar("T")

OPEN_LOCK = 0x6E62_6F70_656E  # "nbopen": one process at a time opens a store's event tables
"""The advisory lock a process holds while it opens a store whose tables are not yet made."""

CASE_TABLES = Component(
    "case_event_tables",
    [Migration(1, "the case service's events, chain, chain list and snapshots tables "
                  "(created by its recorders)", sqlite=[], postgres=[])],
)
"""Recorded once the case service's recorders have made their tables in the schema."""

PAYMENT_TABLES = Component(
    "payment_event_tables",
    [Migration(1, "the payment service's events, chain and snapshots tables "
                  "(created by its recorders)", sqlite=[], postgres=[])],
)
"""Recorded once the payment service's recorders have made their tables in the schema."""

BENEFIT_TABLES = Component(
    "benefit_event_tables",
    [Migration(1, "the benefits service's events and snapshots tables "
                  "(created by its recorders)", sqlite=[], postgres=[])],
)
"""Recorded once the benefits service's recorders have made their tables in the schema."""


def opened_in_turn(
    store: StoreConfig, tables: Component, open_service: Callable[[bool], T]
) -> T:
    """`open_service(create_tables)`; on a PostgreSQL store whose `tables` are not recorded
    yet, under `OPEN_LOCK` with `create_tables` true, recording them afterwards; a store
    already opened takes no lock and is opened with `create_tables` false (no DDL)."""
    if store.kind != "postgres":
        if store.sqlite_path is None:
            return open_service(True)
        with sqlite_turn(store.sqlite_path):
            return open_service(True)
    import psycopg  # here, not with the module: a SQLite store never needs it

    schema = store.schema_name or "public"
    with psycopg.connect(store.conninfo(), autocommit=True) as db:
        recorded = recorded_versions_postgres(db, schema).get(tables.name, 0)
        if recorded >= tables.latest:  # a newer release's tables are there too
            db.close()  # not held while the service opens
            return open_service(False)
        # Session-level: held across the service's own transactions and connections; closing
        # the connection (also when opening fails) lets go of it.
        db.execute("SELECT pg_advisory_lock(%s)", (OPEN_LOCK,))
        service = open_service(True)
        migrate_postgres(db, schema, tables)
        return service


TURN_POLL_S = 0.05
"""How often a turn waited for with a limit is tried again (`flock` itself has no timeout)."""


class TurnNotTakenError(NervenbahnError, TimeoutError):
    """Another holder kept the turn of a SQLite file longer than the caller would wait."""


@contextmanager
def sqlite_turn(database: Path, *, wait_s: float | None = None) -> Iterator[None]:
    """Hold the exclusive turn of the SQLite file `database` (a `flock` of `<database>.opening`,
    made empty and private if missing), waiting for another holder (another process, or
    another thread with a turn of its own): without limit, or `wait_s` seconds at most, then
    `TurnNotTakenError`."""
    lock = database.with_name(database.name + ".opening")
    private_file(lock)
    with lock.open("a") as handle:
        _take_turn(handle, wait_s)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _take_turn(handle: IO[str], wait_s: float | None) -> None:
    if wait_s is None:
        fcntl.flock(handle, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TurnNotTakenError(
                    f"{handle.name}: the turn is held by another (a build or a migration); "
                    f"not taken within {wait_s:g} s"
                ) from None
            time.sleep(min(TURN_POLL_S, left))
