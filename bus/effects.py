"""A consumer's own database: its effects, the events it has processed and its offsets.

The handler writes its effects through the transaction it is given; the consumer records the
event id and the next offset in the same transaction. One commit makes all three durable, or
none: that is what makes each event take effect exactly once, however often it is delivered.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from schemas.sql import Component, Migration, migrate_postgres, migrate_sqlite

__all__ = [
    "CONSUMER_BOOKKEEPING",
    "EffectStore",
    "PartitionMark",
    "PostgresEffectStore",
    "SQLiteEffectStore",
]

CONSUMER_BOOKKEEPING = Component(
    "consumer_bookkeeping",
    [
        Migration(
            1,
            "offsets and processed events of each consumer group",
            sqlite=[
                "CREATE TABLE IF NOT EXISTS consumer_offsets (group_id TEXT, topic TEXT, "
                "partition INTEGER, next_offset INTEGER NOT NULL, epoch TEXT, "
                "PRIMARY KEY (group_id, topic, partition))",
                "CREATE TABLE IF NOT EXISTS processed_events (group_id TEXT, event_id TEXT, "
                "PRIMARY KEY (group_id, event_id)) WITHOUT ROWID",
            ],
            postgres=[
                "CREATE TABLE IF NOT EXISTS {schema}.consumer_offsets (group_id text, "
                "topic text, partition int, next_offset bigint NOT NULL, epoch text, "
                "PRIMARY KEY (group_id, topic, partition))",
                "CREATE TABLE IF NOT EXISTS {schema}.processed_events (group_id text, "
                "event_id uuid, PRIMARY KEY (group_id, event_id))",
            ],
        )
    ],
    tables=["consumer_offsets", "processed_events"],
)
"""The bookkeeping tables of a consumer's database (and of the read models' schema)."""


@dataclass(frozen=True)
class PartitionMark:
    """Where a group stands in a partition: the next offset, in which relay epoch."""

    next_offset: int
    epoch: str | None = None


class EffectStore(ABC):
    """Port: transactions over the consumer's database, with its bookkeeping tables."""

    @abstractmethod
    def transaction(self) -> Any:
        """A context manager yielding a connection in a transaction (committed on exit)."""

    @abstractmethod
    def savepoint(self, tx: Any) -> Any:
        """A context manager: what happens inside is undone alone if it raises."""

    @abstractmethod
    def seen(self, tx: Any, group: str, event_id: UUID) -> bool:
        """True if the group has already processed the event."""

    @abstractmethod
    def mark(self, tx: Any, group: str, event_id: UUID) -> None:
        """Record that the group processed the event."""

    @abstractmethod
    def advance(self, tx: Any, group: str, topic: str, partition: int, mark: PartitionMark) -> None:
        """Record the next offset to read of a partition (and the epoch it belongs to)."""

    @abstractmethod
    def offsets(self, group: str) -> dict[tuple[str, int], PartitionMark]:
        """Where the group stands in every partition it has consumed."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""


class SQLiteEffectStore(EffectStore):
    """A consumer database in a SQLite file; the handler gets the sqlite3 connection."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode = WAL")
        migrate_sqlite(self.db, CONSUMER_BOOKKEEPING)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    @contextmanager
    def savepoint(self, tx: sqlite3.Connection) -> Iterator[None]:
        tx.execute("SAVEPOINT message")
        try:
            yield
        except BaseException:
            tx.execute("ROLLBACK TO message")
            tx.execute("RELEASE message")
            raise
        tx.execute("RELEASE message")

    def seen(self, tx: sqlite3.Connection, group: str, event_id: UUID) -> bool:
        return (
            tx.execute(
                "SELECT 1 FROM processed_events WHERE group_id = ? AND event_id = ?",
                (group, event_id.hex),
            ).fetchone()
            is not None
        )

    def mark(self, tx: sqlite3.Connection, group: str, event_id: UUID) -> None:
        tx.execute("INSERT INTO processed_events VALUES (?, ?)", (group, event_id.hex))

    def advance(
        self, tx: sqlite3.Connection, group: str, topic: str, partition: int, mark: PartitionMark
    ) -> None:
        tx.execute(
            "INSERT INTO consumer_offsets VALUES (?, ?, ?, ?, ?) ON CONFLICT "
            "(group_id, topic, partition) DO UPDATE SET next_offset = excluded.next_offset, "
            "epoch = excluded.epoch",
            (group, topic, partition, mark.next_offset, mark.epoch),
        )

    def offsets(self, group: str) -> dict[tuple[str, int], PartitionMark]:
        with self._lock:
            rows = self.db.execute(
                "SELECT topic, partition, next_offset, epoch FROM consumer_offsets "
                "WHERE group_id = ?",
                (group,),
            ).fetchall()
        return {(topic, part): PartitionMark(offset, epoch) for topic, part, offset, epoch in rows}

    def close(self) -> None:
        with self._lock:
            self.db.close()


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
