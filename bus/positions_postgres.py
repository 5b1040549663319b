"""Relay positions in the event store's PostgreSQL schema (`bus.positions.RelayPositionStore`):
one row per relay, each save committed before it returns (autocommit)."""

from __future__ import annotations

import threading

import psycopg
from psycopg import sql

from bus.positions import RELAY_POSITIONS, RelayPosition, RelayPositionStore
from schemas.sql import migrate_postgres

__all__ = ["PostgresPositionStore"]


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
