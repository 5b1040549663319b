"""Relay positions in the event store's PostgreSQL schema (`bus.positions.RelayPositionStore`):
one row per relay, each save committed before it returns (autocommit). Both statements are
idempotent (a read, an upsert of the whole row), so a connection lost under one is replaced and
the statement run again (`schemas.postgres.PostgresConnection`)."""

from __future__ import annotations

from functools import partial

from psycopg import sql

from bus.positions import RELAY_POSITIONS, RelayPosition, RelayPositionStore
from schemas.postgres import PostgresConnection
from schemas.sql import migrate_postgres

__all__ = ["PostgresPositionStore"]


class PostgresPositionStore(RelayPositionStore):
    """Relay positions in the PostgreSQL database (and schema) of the event store."""

    def __init__(self, conninfo: str, schema: str) -> None:
        self._table = sql.Identifier(schema or "public", "relay_positions")
        self._db = PostgresConnection(
            conninfo, prepare=partial(migrate_postgres, schema=schema or "public",
                                      component=RELAY_POSITIONS)
        )
        self._db.connection()  # the table exists once the store is opened

    def load(self, relay: str) -> RelayPosition:
        query = sql.SQL("SELECT position, published, epoch FROM {} WHERE relay = %s").format(
            self._table
        )
        row = self._db.run(lambda db: db.execute(query, (relay,)).fetchone(), idempotent=True)
        return RelayPosition(*row) if row else RelayPosition()

    def save(self, relay: str, position: RelayPosition) -> None:
        statement = sql.SQL(
            "INSERT INTO {} (relay, position, published, epoch) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (relay) DO UPDATE SET position = excluded.position, "
            "published = excluded.published, epoch = excluded.epoch, updated_at = now()"
        ).format(self._table)
        values = (relay, position.position, position.published, position.epoch)
        self._db.run(lambda db: db.execute(statement, values), idempotent=True)

    def close(self) -> None:
        self._db.close()
