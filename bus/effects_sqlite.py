"""The consumer's database in a SQLite file (`bus.effects.EffectStore`): effects, processed
events and offsets in one file of the consumer's own, written in `BEGIN IMMEDIATE`
transactions (WAL), so a crash leaves all three of a message or none."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

from bus.effects import CONSUMER_BOOKKEEPING, EffectStore, PartitionMark, marks_with_epochs
from schemas.sql import migrate_sqlite

__all__ = ["SQLiteEffectStore"]


class SQLiteEffectStore(EffectStore):
    """A consumer database in a SQLite file; the handler gets the sqlite3 connection."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode = WAL")
        migrate_sqlite(self.db, CONSUMER_BOOKKEEPING)
        self._staging = False

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

    def mark_all(self, tx: sqlite3.Connection, group: str, event_ids: Sequence[UUID]) -> None:
        table = "temp.staged_marks" if self._staging else "processed_events"
        tx.executemany(f"INSERT INTO {table} VALUES (?, ?)",  # noqa: S608 (one of two names)
                       [(group, event_id.hex) for event_id in event_ids])

    @contextmanager
    def marks_in_bulk(self) -> Iterator[None]:
        """While a fresh database is filled (a rebuild), `mark_all` appends the ids to a
        temporary table; when the block ends they are moved into `processed_events` in key
        order, in one transaction. A rebuild's ids come in no order: each inserted into the
        growing index dirtied a page of its own once the index outgrew the cache, and every
        commit wrote them all (at 1 million events, 7-9 µs an event more than at the start:
        benchmarks/scale.py). Only for a database no one reads meanwhile: `seen` does not see
        the staged ids. If the block fails, nothing staged is moved."""
        with self._lock:
            self.db.execute("CREATE TEMP TABLE staged_marks (group_id TEXT, event_id TEXT)")
            self._staging = True
            try:
                yield
                self._staging = False
                with self.transaction() as tx:
                    tx.execute("INSERT INTO processed_events SELECT group_id, event_id "
                               "FROM temp.staged_marks ORDER BY group_id, event_id")
            finally:
                self._staging = False
                self.db.execute("DROP TABLE temp.staged_marks")

    def advance(
        self, tx: sqlite3.Connection, group: str, topic: str, partition: int, mark: PartitionMark
    ) -> None:
        tx.execute(
            "INSERT INTO consumer_offsets VALUES (?, ?, ?, ?, ?) ON CONFLICT "
            "(group_id, topic, partition) DO UPDATE SET next_offset = excluded.next_offset, "
            "epoch = excluded.epoch",
            (group, topic, partition, mark.next_offset, mark.epoch),
        )

    def remember_epoch(
        self, tx: sqlite3.Connection, group: str, topic: str, partition: int, epoch: str,
        first_offset: int,
    ) -> None:
        tx.execute(
            "INSERT OR IGNORE INTO consumer_epochs VALUES (?, ?, ?, ?, ?)",
            (group, topic, partition, epoch, first_offset),
        )

    def offsets(self, group: str) -> dict[tuple[str, int], PartitionMark]:
        with self._lock:
            rows = self.db.execute(
                "SELECT topic, partition, next_offset, epoch FROM consumer_offsets "
                "WHERE group_id = ?",
                (group,),
            ).fetchall()
            met = self.db.execute(
                "SELECT topic, partition, epoch FROM consumer_epochs WHERE group_id = ?",
                (group,),
            ).fetchall()
        return marks_with_epochs(rows, met)

    def rewind(
        self,
        tx: sqlite3.Connection,
        group: str,
        marks: Mapping[tuple[str, int], int],
        *,
        forget_processed: bool,
    ) -> None:
        """Move `group` to `marks` (the next offset by topic and partition; a partition not
        named is read from its beginning), for `nervenbahn connectors reset`. The relay epochs
        the group met are forgotten (the first it meets again is taken without a rewind), and
        with `forget_processed` the events it processed, so that those read again take effect
        again instead of being skipped as duplicates."""
        tx.execute("DELETE FROM consumer_offsets WHERE group_id = ?", (group,))
        tx.execute("DELETE FROM consumer_epochs WHERE group_id = ?", (group,))
        if forget_processed:
            tx.execute("DELETE FROM processed_events WHERE group_id = ?", (group,))
        for (topic, partition), offset in sorted(marks.items()):
            self.advance(tx, group, topic, partition, PartitionMark(offset))

    def close(self) -> None:
        with self._lock:
            self.db.close()
