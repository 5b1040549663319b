"""A consumer's own database: its effects, the events it has processed and its offsets.

The handler writes its effects through the transaction it is given; the consumer records the
event id and the next offset in the same transaction. One commit makes all three durable, or
none: that is what makes each event take effect exactly once, however often it is delivered.

This module is the port (`EffectStore`) and the tables (`CONSUMER_BOOKKEEPING`); each backend is
a module of its own: `bus.effects_sqlite` (a SQLite file per consumer) and
`bus.effects_postgres` (a schema per consumer).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from schemas.sql import Component, Migration, placeholder

__all__ = [
    "CONSUMER_BOOKKEEPING",
    "EffectStore",
    "PartitionMark",
    "marks_with_epochs",
    "read_offsets",
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
        ),
        Migration(
            2,
            "the relay epochs each group has met per partition (a rewind once per new epoch)",
            sqlite=[
                "CREATE TABLE IF NOT EXISTS consumer_epochs (group_id TEXT, topic TEXT, "
                "partition INTEGER, epoch TEXT, first_offset INTEGER NOT NULL, "
                "PRIMARY KEY (group_id, topic, partition, epoch))",
                "INSERT OR IGNORE INTO consumer_epochs SELECT group_id, topic, partition, "
                "epoch, 0 FROM consumer_offsets WHERE epoch IS NOT NULL AND epoch <> ''",
            ],
            postgres=[
                "CREATE TABLE IF NOT EXISTS {schema}.consumer_epochs (group_id text, "
                "topic text, partition int, epoch text, first_offset bigint NOT NULL, "
                "PRIMARY KEY (group_id, topic, partition, epoch))",
                "INSERT INTO {schema}.consumer_epochs SELECT group_id, topic, partition, "
                "epoch, 0 FROM {schema}.consumer_offsets WHERE epoch IS NOT NULL "
                "AND epoch <> '' ON CONFLICT DO NOTHING",
            ],
        ),
    ],
    tables=["consumer_offsets", "processed_events"],
)
"""The bookkeeping tables of a consumer's database (and of the read models' schema).

`consumer_epochs` holds every relay epoch a group has met in a partition, with the offset where
it first met it (0 for an epoch known from a mark kept before the table existed, copied from
`consumer_offsets.epoch` by migration 2)."""


@dataclass(frozen=True)
class PartitionMark:
    """Where a group stands in a partition: the next offset, in which relay epoch, and every
    epoch it has met there (a message of a known epoch never rewinds the partition)."""

    next_offset: int
    epoch: str | None = None
    epochs: frozenset[str] = frozenset()

    def knows(self, epoch: str) -> bool:
        """The group has met this epoch in the partition before."""
        return epoch == self.epoch or epoch in self.epochs

    def meeting(self, epoch: str) -> PartitionMark:
        """This mark, with `epoch` among those met."""
        met = self.epochs | {epoch} | ({self.epoch} if self.epoch else set())
        return PartitionMark(self.next_offset, self.epoch, frozenset(met))


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

    def mark_all(self, tx: Any, group: str, event_ids: Sequence[UUID]) -> None:
        """Record that the group processed each of the events (a rebuild's batch): as `mark`
        for each, in one statement where the backend can."""
        for event_id in event_ids:
            self.mark(tx, group, event_id)

    @abstractmethod
    def advance(self, tx: Any, group: str, topic: str, partition: int, mark: PartitionMark) -> None:
        """Record the next offset to read of a partition (and the epoch it belongs to)."""

    @abstractmethod
    def remember_epoch(
        self, tx: Any, group: str, topic: str, partition: int, epoch: str, first_offset: int
    ) -> None:
        """Record that the group met a relay epoch in a partition, first at `first_offset`."""

    @abstractmethod
    def offsets(self, group: str) -> dict[tuple[str, int], PartitionMark]:
        """Where the group stands in every partition it has consumed, with the epochs it has
        met there."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def lost(self, exc: BaseException) -> bool:
        """True if `exc` means the store's connection was lost while a message was handled: the
        message is not the handler's fault, so it is not dead-lettered; the batch fails and
        comes again. A file database never loses its connection."""
        return False

    def conflict(self, exc: BaseException) -> bool:
        """True if `exc` means the database rolled the batch's transaction back because it
        conflicted with another writer's (a deadlock between instances sharing read models,
        a serialization failure): no message of the batch is at fault, so none is
        dead-lettered; the consumer runs the batch again."""
        return False

def marks_with_epochs(
    offsets: Iterable[tuple[str, int, int, str | None]], met: Iterable[tuple[str, int, str]]
) -> dict[tuple[str, int], PartitionMark]:
    """The marks of `consumer_offsets` rows (topic, partition, next offset, epoch), each with
    the epochs of `consumer_epochs` rows (topic, partition, epoch) met in its partition."""
    known: dict[tuple[str, int], set[str]] = {}
    for topic, partition, epoch in met:
        known.setdefault((topic, partition), set()).add(epoch)
    return {
        (topic, partition): PartitionMark(
            offset, epoch, frozenset(known.get((topic, partition), set()))
        )
        for topic, partition, offset, epoch in offsets
    }

def read_offsets(db: Any, group: str) -> dict[tuple[str, int], int]:
    """The next offset of `group` in every partition it has consumed, read through any
    connection to its database (a read-only one: `nervenbahn status`, `/metrics`); the
    tables are named unqualified (a SQLite file, or a connection whose search path is the
    consumer's schema)."""
    query = "SELECT topic, partition, next_offset FROM consumer_offsets WHERE group_id = {}"
    rows = db.execute(query.format(placeholder(db)), (group,)).fetchall()
    return {(topic, int(partition)): int(offset) for topic, partition, offset in rows}
