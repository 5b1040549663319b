"""The connectors' own bookkeeping: source positions, errors, the last run of each, and the
dead letters of each sink that `replay` is done with.

A SQLite file (`<connectors folder>/state.db`), apart from the event store: losing it loses no
case data, only where each source stands (re-reading is harmless: commands are idempotent).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from schemas.sql import Component, Migration, migrate_sqlite

__all__ = ["CONNECTOR_STATE", "ErrorEntry", "RunRecord", "StateStore"]

_STATE_DDL = (
    "CREATE TABLE IF NOT EXISTS positions (connector TEXT PRIMARY KEY, position TEXT NOT NULL, "
    "updated_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS errors (connector TEXT NOT NULL, position TEXT NOT NULL, "
    "reference TEXT NOT NULL, reason TEXT NOT NULL, first_at TEXT NOT NULL, "
    "last_at TEXT NOT NULL, occurrences INTEGER NOT NULL DEFAULT 1, "
    "PRIMARY KEY (connector, position, reason))",
    "CREATE TABLE IF NOT EXISTS runs (connector TEXT PRIMARY KEY, started_at TEXT NOT NULL, "
    "finished_at TEXT NOT NULL, outcome TEXT NOT NULL, summary TEXT NOT NULL)",
)

_REPLAYS_DDL = (
    "CREATE TABLE IF NOT EXISTS replays (connector TEXT NOT NULL, topic TEXT NOT NULL, "
    "partition INTEGER NOT NULL, dead_offset INTEGER NOT NULL, event_id TEXT NOT NULL, "
    "outcome TEXT NOT NULL, replayed_at TEXT NOT NULL, "
    "PRIMARY KEY (connector, topic, partition, dead_offset))",
)

CONNECTOR_STATE = Component(
    "connector_state",
    [Migration(1, "positions, errors and runs of the connectors", _STATE_DDL, postgres=()),
     Migration(2, "the dead letters of each sink that were replayed", _REPLAYS_DDL,
               postgres=())],
    tables=["positions", "errors", "runs"],
)
"""The connectors' bookkeeping (SQLite only: `<connectors folder>/state.db`)."""


@dataclass(frozen=True)
class ErrorEntry:
    """An error of a connector: where (input position or topic/partition@offset) and why."""

    at: str
    position: str
    reference: str
    reason: str
    occurrences: int

    def line(self) -> str:
        """One line for status: when, where, why."""
        where = self.reference or self.position
        again = f" (×{self.occurrences})" if self.occurrences > 1 else ""
        return f"{self.at} {where}: {self.reason}{again}"


@dataclass(frozen=True)
class RunRecord:
    """How the last run of a connector ended."""

    started_at: str
    finished_at: str
    outcome: str
    summary: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class StateStore:
    """Positions, errors and runs of every connector, in one SQLite file.

    `path` must exist as a file private to its owner (the host makes it with
    `PrivateFiles.file`; SQLite gives the -wal and -shm files the database file's mode)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.RLock()
        self.db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self.db.execute("PRAGMA journal_mode = WAL")
        migrate_sqlite(self.db, CONNECTOR_STATE)

    def position(self, connector: str) -> str | None:
        """The last position the source completed, None if it never completed one."""
        with self._lock:
            row = self.db.execute(
                "SELECT position FROM positions WHERE connector = ?", (connector,)
            ).fetchone()
        return None if row is None else str(row[0])

    def save_position(self, connector: str, position: str) -> None:
        """Record that the source completed the item at `position` (durable on return)."""
        with self._lock:
            self.db.execute(
                "INSERT INTO positions VALUES (?, ?, ?) ON CONFLICT (connector) DO UPDATE SET "
                "position = excluded.position, updated_at = excluded.updated_at",
                (connector, position, _now()),
            )

    def record_error(self, connector: str, position: str, reference: str, reason: str) -> None:
        """Record an error; the same error at the same place again only counts up."""
        now = _now()
        with self._lock:
            self.db.execute(
                "INSERT INTO errors VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT "
                "(connector, position, reason) DO UPDATE SET last_at = excluded.last_at, "
                "occurrences = occurrences + 1",
                (connector, position, reference, reason, now, now),
            )

    def errors(self, connector: str, limit: int | None = None) -> list[ErrorEntry]:
        """The connector's errors, most recent first."""
        with self._lock:
            rows = self.db.execute(
                "SELECT last_at, position, reference, reason, occurrences FROM errors "
                "WHERE connector = ? ORDER BY last_at DESC, rowid DESC LIMIT ?",
                (connector, -1 if limit is None else limit),
            ).fetchall()
        return [ErrorEntry(*row) for row in rows]

    def error_count(self, connector: str) -> int:
        """How many distinct errors the connector has recorded."""
        with self._lock:
            row = self.db.execute(
                "SELECT count(*) FROM errors WHERE connector = ?", (connector,)
            ).fetchone()
        return int(row[0])

    def record_run(self, connector: str, started_at: str, outcome: str, summary: str) -> None:
        """Record how the connector's latest run ended."""
        with self._lock:
            self.db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)",
                (connector, started_at, _now(), outcome, summary),
            )

    def last_run(self, connector: str) -> RunRecord | None:
        """The connector's latest run, if any."""
        with self._lock:
            row = self.db.execute(
                "SELECT started_at, finished_at, outcome, summary FROM runs WHERE connector = ?",
                (connector,),
            ).fetchone()
        return None if row is None else RunRecord(*row)

    def replayed(self, connector: str) -> dict[tuple[str, int, int], str]:
        """The sink's dead letters done with by `replay`: (dead-letter topic, partition, offset)
        → outcome ("replayed", "already applied", "not replayable: …")."""
        with self._lock:
            rows = self.db.execute(
                "SELECT topic, partition, dead_offset, outcome FROM replays WHERE connector = ?",
                (connector,),
            ).fetchall()
        return {(topic, int(part), int(offset)): outcome for topic, part, offset, outcome in rows}

    def record_replayed(
        self, connector: str, where: tuple[str, int, int], event_id: str, outcome: str
    ) -> None:
        """Record that the dead letter at `where` (topic, partition, offset) is done with, so
        that it is not replayed twice."""
        with self._lock:
            self.db.execute(
                "INSERT OR REPLACE INTO replays VALUES (?, ?, ?, ?, ?, ?, ?)",
                (connector, *where, event_id, outcome, _now()),
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self.db.close()


def now() -> str:
    """The current time as the state store writes it."""
    return _now()
