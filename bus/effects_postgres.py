"""The consumer's database in PostgreSQL (`bus.effects.EffectStore`): the bookkeeping tables in
the consumer's own schema, the handler's effects in the same transaction of one psycopg
connection (autocommit outside `transaction`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from bus.effects import CONSUMER_BOOKKEEPING, EffectStore, PartitionMark
from schemas.sql import migrate_postgres

__all__ = ["PostgresEffectStore"]


class PostgresEffectStore(EffectStore):
    """A consumer database in PostgreSQL (its own schema); the handler gets the psycopg
    connection, inside a transaction."""

    def __init__(self, conninfo: str, schema: str) -> None:
        self._lock = threading.RLock()
        self._schema = sql.Identifier(schema)
        self.db = psycopg.connect(conninfo, autocommit=True)
        migrate_postgres(self.db, schema, CONSUMER_BOOKKEEPING)

    def _sql(self, template: str) -> sql.Composed:
        return sql.SQL(template).format(self._schema)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock, self.db.transaction():
            yield self.db

    @contextmanager
    def savepoint(self, tx: psycopg.Connection[Any]) -> Iterator[None]:
        with tx.transaction():  # nested: a savepoint
            yield

    def seen(self, tx: psycopg.Connection[Any], group: str, event_id: UUID) -> bool:
        return (
            tx.execute(
                self._sql(
                    "SELECT 1 FROM {}.processed_events WHERE group_id = %s AND event_id = %s"
                ),
                (group, event_id),
            ).fetchone()
            is not None
        )

    def mark(self, tx: psycopg.Connection[Any], group: str, event_id: UUID) -> None:
        tx.execute(self._sql("INSERT INTO {}.processed_events VALUES (%s, %s)"), (group, event_id))

    def advance(
        self,
        tx: psycopg.Connection[Any],
        group: str,
        topic: str,
        partition: int,
        mark: PartitionMark,
    ) -> None:
        tx.execute(
            self._sql(
                "INSERT INTO {}.consumer_offsets VALUES (%s, %s, %s, %s, %s) ON CONFLICT "
                "(group_id, topic, partition) DO UPDATE SET next_offset = excluded.next_offset, "
                "epoch = excluded.epoch"
            ),
            (group, topic, partition, mark.next_offset, mark.epoch),
        )

    def offsets(self, group: str) -> dict[tuple[str, int], PartitionMark]:
        with self._lock:
            rows = self.db.execute(
                self._sql(
                    "SELECT topic, partition, next_offset, epoch FROM {}.consumer_offsets "
                    "WHERE group_id = %s"
                ),
                (group,),
            ).fetchall()
        return {(topic, part): PartitionMark(offset, epoch) for topic, part, offset, epoch in rows}

    def close(self) -> None:
        with self._lock:
            self.db.close()
