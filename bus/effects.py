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
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from schemas.sql import Component, Migration

__all__ = [
    "CONSUMER_BOOKKEEPING",
    "EffectStore",
    "PartitionMark",
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

    def lost(self, exc: BaseException) -> bool:
        """True if `exc` means the store's connection was lost while a message was handled: the
        message is not the handler's fault, so it is not dead-lettered; the batch fails and
        comes again. A file database never loses its connection."""
        return False
