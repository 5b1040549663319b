"""The consumer's database in PostgreSQL (`bus.effects.EffectStore`): the bookkeeping tables in
the consumer's own schema, the handler's effects in the same transaction of one psycopg
connection (autocommit outside `transaction`).

The connection comes back after a loss (`schemas.postgres.PostgresConnection`): a batch whose
transaction cannot begin on the old one begins on a new one; a batch that loses it half-way
fails as a whole (`DatabaseUnavailableError`, nothing of it committed, its messages not
dead-lettered: `lost`) and the consumer's next poll reads it again."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from bus.effects import CONSUMER_BOOKKEEPING, EffectStore, PartitionMark, marks_with_epochs
from schemas.postgres import PostgresConnection, connection_lost, transaction_conflict
from schemas.sql import migrate_postgres

__all__ = ["PostgresEffectStore"]


class PostgresEffectStore(EffectStore):
    """A consumer database in PostgreSQL (its own schema); the handler gets the psycopg
    connection, inside a transaction."""

    def __init__(self, conninfo: str, schema: str) -> None:
        self._schema = sql.Identifier(schema)
        self.connection = PostgresConnection(
            conninfo, prepare=partial(migrate_postgres, schema=schema,
                                      component=CONSUMER_BOOKKEEPING)
        )
        self.connection.connection()  # the bookkeeping tables exist once the store is opened

    def _sql(self, template: str) -> sql.Composed:
        return sql.SQL(template).format(self._schema)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self.connection.transaction() as db:
            yield db

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

    def mark_all(
        self, tx: psycopg.Connection[Any], group: str, event_ids: Sequence[UUID]
    ) -> None:
        with tx.cursor() as cursor:
            cursor.executemany(self._sql("INSERT INTO {}.processed_events VALUES (%s, %s)"),
                               [(group, event_id) for event_id in event_ids])

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

    def remember_epoch(
        self, tx: psycopg.Connection[Any], group: str, topic: str, partition: int, epoch: str,
        first_offset: int,
    ) -> None:
        tx.execute(
            self._sql(
                "INSERT INTO {}.consumer_epochs VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING"
            ),
            (group, topic, partition, epoch, first_offset),
        )

    def offsets(self, group: str) -> dict[tuple[str, int], PartitionMark]:
        offsets = self._sql(
            "SELECT topic, partition, next_offset, epoch FROM {}.consumer_offsets "
            "WHERE group_id = %s"
        )
        epochs = self._sql(
            "SELECT topic, partition, epoch FROM {}.consumer_epochs WHERE group_id = %s"
        )

        def read(db: psycopg.Connection[Any]) -> tuple[list[Any], list[Any]]:
            return (db.execute(offsets, (group,)).fetchall(),
                    db.execute(epochs, (group,)).fetchall())

        rows, met = self.connection.run(read, idempotent=True)
        return marks_with_epochs(rows, met)

    def lost(self, exc: BaseException) -> bool:
        return connection_lost(exc, self.connection.current())

    def conflict(self, exc: BaseException) -> bool:
        return transaction_conflict(exc)

    def close(self) -> None:
        self.connection.close()
