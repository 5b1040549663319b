"""Relay positions and leases in the event store's SQLite file (`bus.positions.RelayPositionStore`):
one row per relay, each save committed before it returns (WAL). Leases are read and written in
`BEGIN IMMEDIATE` transactions (the database's write lock), their times by SQLite's clock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bus.errors import LeaseLostError
from bus.positions import (
    RELAY_POSITIONS,
    InstanceRecord,
    Lease,
    RelayPosition,
    RelayPositionStore,
)
from schemas.sql import migrate_sqlite

__all__ = ["SQLitePositionStore"]

_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
"""SQLite's clock in seconds since 1970 (millisecond precision)."""

_UPSERT = (
    "INSERT INTO relay_positions (relay, position, published, epoch) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (relay) DO UPDATE SET "
    "position = excluded.position, published = excluded.published, "
    "epoch = excluded.epoch, updated_at = datetime('now')"
)
_HELD = (
    f"SELECT 1 FROM relay_leases WHERE relay = ? AND holder = ? AND token = ? "  # noqa: S608
    f"AND expires_at > {_NOW}"
)

_TAKE = (
    "INSERT INTO relay_leases (relay, holder, token, expires_at, acquired_at) "  # noqa: S608
    f"VALUES (?, ?, ?, {_NOW} + ?, {_NOW}) ON CONFLICT (relay) DO UPDATE SET "
    "holder = excluded.holder, token = excluded.token, "
    "expires_at = excluded.expires_at, acquired_at = excluded.acquired_at"
)


class SQLitePositionStore(RelayPositionStore):
    """Relay positions and leases in the SQLite file of the event store."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode = WAL")
        migrate_sqlite(self._db, RELAY_POSITIONS)

    def load(self, relay: str) -> RelayPosition:
        with self._lock:
            row = self._db.execute(
                "SELECT position, published, epoch FROM relay_positions WHERE relay = ?",
                (relay,),
            ).fetchone()
        return RelayPosition(*row) if row else RelayPosition()

    def save(self, relay: str, position: RelayPosition, lease: Lease | None = None) -> None:
        values = (relay, position.position, position.published, position.epoch)
        if lease is None:
            with self._lock:
                self._db.execute(_UPSERT, values)
            return
        with self._write() as db:
            if db.execute(_HELD, (lease.relay, lease.holder, lease.token)).fetchone() is None:
                raise LeaseLostError(lease.relay, lease.holder, lease.token)
            db.execute(_UPSERT, values)

    def acquire(self, relay: str, holder: str, seconds: float) -> Lease | None:
        with self._write() as db:
            row = db.execute(
                f"SELECT holder, token, expires_at > {_NOW} FROM relay_leases "  # noqa: S608
                "WHERE relay = ?",
                (relay,),
            ).fetchone()
            if row is not None and row[2] and row[0] != holder:
                return None  # another instance holds it
            token = row[1] if row is not None and row[2] else (row[1] if row else 0) + 1
            db.execute(_TAKE, (relay, holder, token, seconds))
        return Lease(relay, holder, token)

    def renew(self, lease: Lease, seconds: float) -> bool:
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE relay_leases SET expires_at = {_NOW} + ? WHERE relay = ? "  # noqa: S608
                f"AND holder = ? AND token = ? AND expires_at > {_NOW}",
                (seconds, lease.relay, lease.holder, lease.token),
            )
        return cursor.rowcount == 1

    def release(self, lease: Lease) -> None:
        with self._lock:
            self._db.execute(
                f"UPDATE relay_leases SET expires_at = {_NOW} WHERE relay = ? "  # noqa: S608
                "AND holder = ? AND token = ?",
                (lease.relay, lease.holder, lease.token),
            )

    def holder(self, relay: str) -> Lease | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT holder, token FROM relay_leases WHERE relay = ? "  # noqa: S608
                f"AND expires_at > {_NOW}",
                (relay,),
            ).fetchone()
        return Lease(relay, row[0], row[1]) if row else None

    def announce(self, record: InstanceRecord, seconds: float) -> list[InstanceRecord]:
        with self._write() as db:
            db.execute(f"DELETE FROM serve_instances WHERE expires_at < {_NOW} - 86400")  # noqa: S608
            db.execute(
                "INSERT INTO serve_instances (holder, instance, host, pid, read_models, "  # noqa: S608
                f"group_suffix, expires_at, started_at) VALUES (?, ?, ?, ?, ?, ?, {_NOW} + ?, "
                f"{_NOW}) ON CONFLICT (holder) DO UPDATE SET expires_at = excluded.expires_at",
                (record.holder, record.instance, record.host, record.pid, record.read_models,
                 record.group_suffix, seconds),
            )
            rows = db.execute(
                "SELECT holder, instance, host, pid, read_models, group_suffix "  # noqa: S608
                f"FROM serve_instances WHERE holder != ? AND expires_at > {_NOW} "
                "ORDER BY started_at",
                (record.holder,),
            ).fetchall()
        return [InstanceRecord(*row) for row in rows]

    def live_instances(self) -> list[InstanceRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT holder, instance, host, pid, read_models, group_suffix "  # noqa: S608
                f"FROM serve_instances WHERE expires_at > {_NOW} ORDER BY started_at"
            ).fetchall()
        return [InstanceRecord(*row) for row in rows]

    def withdraw(self, holder: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM serve_instances WHERE holder = ?", (holder,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A transaction under the database's write lock, committed unless it raises."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
