"""Relay positions in the event store's SQLite file (`bus.positions.RelayPositionStore`): one
row per relay, each save committed before it returns (WAL)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from bus.positions import RELAY_POSITIONS, RelayPosition, RelayPositionStore
from schemas.sql import migrate_sqlite

__all__ = ["SQLitePositionStore"]


class SQLitePositionStore(RelayPositionStore):
    """Relay positions in the SQLite file of the event store."""

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

    def save(self, relay: str, position: RelayPosition) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO relay_positions (relay, position, published, epoch) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (relay) DO UPDATE SET "
                "position = excluded.position, published = excluded.published, "
                "epoch = excluded.epoch, updated_at = datetime('now')",
                (relay, position.position, position.published, position.epoch),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
