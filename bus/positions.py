"""Where the relay keeps its position: in the event store's own database, durably.

The position is the id of the last notification the relay has published and the broker has
acknowledged; `published` counts the messages it has published since it last started from
the beginning, so that a broker that comes back empty can be noticed; `epoch` names that
start, and travels in every message's headers, so that consumers notice it too.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from schemas.sql import Component, Migration, migrate_postgres, migrate_sqlite

__all__ = [
    "RELAY_POSITIONS",
    "PostgresPositionStore",
    "RelayPosition",
    "RelayPositionStore",
    "SQLitePositionStore",
    "new_epoch",
]


RELAY_POSITIONS = Component(
    "relay_positions",
    [
        Migration(
            1,
            "the position of each relay",
            sqlite=[
                "CREATE TABLE IF NOT EXISTS relay_positions (relay TEXT PRIMARY KEY, "
                "position INTEGER NOT NULL, published INTEGER NOT NULL, epoch TEXT NOT NULL, "
                "updated_at TEXT NOT NULL DEFAULT (datetime('now')))"
            ],
            postgres=[
                "CREATE TABLE IF NOT EXISTS {schema}.relay_positions (relay text PRIMARY KEY, "
                "position bigint NOT NULL, published bigint NOT NULL, epoch text NOT NULL, "
                "updated_at timestamptz NOT NULL DEFAULT now())"
            ],
        )
    ],
    tables=["relay_positions"],
)
"""The relays' positions, in the event store's database."""


def new_epoch() -> str:
    """A fresh epoch: the relay (re)starts publishing from the first event."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RelayPosition:
    """How far a relay has got, in which epoch."""

    position: int = 0
    published: int = 0
    epoch: str = ""


class RelayPositionStore(ABC):
    """Port: the durable position of each relay."""

    @abstractmethod
    def load(self, relay: str) -> RelayPosition:
        """The relay's position (zero if it never ran)."""

    @abstractmethod
    def save(self, relay: str, position: RelayPosition) -> None:
        """Record the relay's position durably (committed when this returns)."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""


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


class PostgresPositionStore(RelayPositionStore):
    """Relay positions in the PostgreSQL database (and schema) of the event store."""

    def __init__(self, conninfo: str, schema: str) -> None:
        self._lock = threading.Lock()
        self._table = sql.Identifier(schema or "public", "relay_positions")
        self._db = psycopg.connect(conninfo, autocommit=True)
        migrate_postgres(self._db, schema or "public", RELAY_POSITIONS)

    def load(self, relay: str) -> RelayPosition:
        with self._lock:
            row = self._db.execute(
                sql.SQL("SELECT position, published, epoch FROM {} WHERE relay = %s").format(
                    self._table
                ),
                (relay,),
            ).fetchone()
        return RelayPosition(*row) if row else RelayPosition()

    def save(self, relay: str, position: RelayPosition) -> None:
        with self._lock:
            self._db.execute(
                sql.SQL(
                    "INSERT INTO {} (relay, position, published, epoch) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (relay) DO UPDATE SET position = excluded.position, "
                    "published = excluded.published, epoch = excluded.epoch, updated_at = now()"
                ).format(self._table),
                (relay, position.position, position.published, position.epoch),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
