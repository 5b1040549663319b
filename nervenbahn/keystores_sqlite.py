"""Wrapped per-person data keys in the event store's SQLite file (the port:
`domain.personal_data.KeyStore`).

Destroying a key must leave no copy behind in the database: this adapter deletes with
`secure_delete` on and truncates the write-ahead log.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from uuid import UUID

import structlog

from domain.personal_data import KeyStore
from nervenbahn.keystores import PERSON_KEYS
from nervenbahn.paths import private_file
from schemas.sql import migrate_sqlite

__all__ = ["SQLiteKeyStore"]

log = structlog.get_logger("nervenbahn.keystore")

_CHECKPOINT_WAIT_MS = 2000
"""How long emptying the write-ahead log waits for readers to finish."""


class SQLiteKeyStore(KeyStore):
    """Wrapped data keys in the SQLite file of the event store."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._path = path
        self._db = sqlite3.connect(private_file(path), check_same_thread=False,
                                   isolation_level=None, timeout=10)
        self._db.execute("PRAGMA secure_delete = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        migrate_sqlite(self._db, PERSON_KEYS)

    def load(self, person_id: UUID) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT wrapped_key FROM person_keys WHERE person_id = ?", (person_id.hex,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def store_new(
        self, person_ids: Sequence[UUID], make_key: Callable[[UUID], bytes]
    ) -> tuple[list[UUID], list[UUID]]:
        """(See the port.) In one transaction: the tombstones of those without a key, then
        each key inserted, or marked as found where there is one."""
        wanted = list(dict.fromkeys(person_ids))
        if not wanted:
            return [], []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                erased = {row[0] for row in self._db.execute(
                    "SELECT e.person_id FROM json_each(?) AS w"
                    " JOIN erased_persons e ON e.person_id = w.value"
                    " WHERE NOT EXISTS (SELECT 1 FROM person_keys k"
                    " WHERE k.person_id = w.value)",
                    (json.dumps([p.hex for p in wanted]),))}
                stored = []
                if not erased:
                    for person_id in wanted:
                        (found,) = self._db.execute(
                            "INSERT INTO person_keys (person_id, wrapped_key) VALUES (?, ?) "
                            "ON CONFLICT (person_id) DO UPDATE SET found = 1 RETURNING found",
                            (person_id.hex, make_key(person_id))).fetchone()
                        if not found:
                            stored.append(person_id)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return stored, [p for p in wanted if p.hex in erased]

    def discard_many(self, person_ids: Iterable[UUID]) -> None:
        with self._lock:
            self._db.executemany(
                "DELETE FROM person_keys WHERE person_id = ? AND found = 0",
                [(p.hex,) for p in person_ids],
            )

    def destroy(self, person_id: UUID) -> bool:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            deleted = self._db.execute(
                "DELETE FROM person_keys WHERE person_id = ?", (person_id.hex,)
            ).rowcount
            self._db.execute(
                "INSERT OR IGNORE INTO erased_persons (person_id) VALUES (?)", (person_id.hex,)
            )
            self._db.execute("COMMIT")
        if self.copies_left() is not None:
            log.warning(
                "key destroyed but the write-ahead log is still in use by a reader",
                person_id=str(person_id),
            )
        return deleted > 0

    def copies_left(self) -> str | None:
        """Move the overwritten pages into the main file and empty the write-ahead log, so that
        no page or log frame still holds a destroyed key; say so if a reader prevents it."""
        with self._lock:
            self._db.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_WAIT_MS}")
            try:
                busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                self._db.execute("PRAGMA busy_timeout = 10000")
        if not busy:
            return None
        return (
            f"{self._path} and its write-ahead log {self._path}-wal may still hold the old "
            "key: another connection is reading the store, so the log could not be emptied; "
            "stop the other processes (serve, relays, connectors) and run `person erase` again"
        )

    def is_erased(self, person_id: UUID) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM erased_persons WHERE person_id = ?", (person_id.hex,)
            ).fetchone()
        return row is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()
