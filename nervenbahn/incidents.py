"""Incidents: outages and degraded periods of `serve`, recorded with start and end, so that
technical problems are reported, not hidden (seed 003: the councils want timely reports).

Kinds (`KINDS`), each with a subject that names a part of the installation, never a person:

- `worker-down`, subject the worker (`relay`, `projection-region`, `api`, …): open while it
  is not running (failed, waiting for its restart, given up);
- `relay-lag`, subject the relay's dataset (`case-events`, …): open while it is more than
  NERVENBAHN_READY_MAX_LAG events behind, or its lag cannot be read;
- `broker-unreachable`, subject `kafka`: open while no broker of the bootstrap list accepts a
  connection;
- `store-unreachable`, subject `event store`: open while a new connection to the event store
  does not answer.

The `IncidentMonitor` (a supervised worker of `serve`, every NERVENBAHN_INCIDENT_CHECK_SECONDS)
opens an incident when a condition starts and closes it when it ends; on every look it records
a heartbeat (`last_seen_at`) on the incidents still open. An incident left open because `serve`
died (SIGKILL, power cut) is closed at the next start with its last heartbeat as end, and its
note says so. A clean stop closes the open ones at the stop. While the store itself is
unreachable nothing can be written: its incident is kept in memory and recorded, start and
end, once the store answers again.

The table `incidents` lives in the event store's database (the SQLite file, or the store's
PostgreSQL schema), component `incidents` (docs/storage.md). Its statements are written once for
both backends with the connection's placeholder (`schemas.sql.placeholder`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import structlog
from psycopg import sql

from nervenbahn.config import StoreConfig
from schemas.postgres import connection_lost
from schemas.sql import Component, Migration, migrate, placeholder

__all__ = [
    "INCIDENTS",
    "KINDS",
    "Incident",
    "IncidentStore",
    "open_incident_store",
]

log = structlog.get_logger("nervenbahn.incidents")

KINDS = ("worker-down", "relay-lag", "broker-unreachable", "store-unreachable")
"""What an incident can be (see the module's table)."""

LEFT_OPEN_NOTE = ("serve stopped while it was open (killed?); end is the monitor's last "
                  "heartbeat")
STOPPED_NOTE = "closed when serve stopped"

INCIDENTS = Component(
    "incidents",
    [
        Migration(
            1,
            "outages and degraded periods of serve: kind, subject, start, end, heartbeat",
            sqlite=[
                "CREATE TABLE IF NOT EXISTS incidents (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "kind TEXT NOT NULL, subject TEXT NOT NULL, started_at TEXT NOT NULL, "
                "ended_at TEXT, last_seen_at TEXT NOT NULL, note TEXT NOT NULL DEFAULT '')",
                "CREATE INDEX IF NOT EXISTS incidents_open ON incidents (ended_at)",
            ],
            postgres=[
                "CREATE TABLE IF NOT EXISTS {schema}.incidents (id bigserial PRIMARY KEY, "
                "kind text NOT NULL, subject text NOT NULL, started_at timestamptz NOT NULL, "
                "ended_at timestamptz, last_seen_at timestamptz NOT NULL, "
                "note text NOT NULL DEFAULT '')",
                "CREATE INDEX IF NOT EXISTS incidents_open ON {schema}.incidents (ended_at)",
            ],
        )
    ],
    tables=["incidents"],
)
"""The incidents table, in the event store's database."""


@dataclass(frozen=True)
class Incident:
    """One outage or degraded period: what, of which part, from when to when (None: ongoing)."""

    kind: str
    subject: str
    started_at: datetime
    ended_at: datetime | None = None
    note: str = ""

    def duration_seconds(self, now: datetime) -> float:
        """How long it lasted (until `now` if it is ongoing)."""
        return ((self.ended_at or now) - self.started_at).total_seconds()


class IncidentStore:
    """The incidents table on one connection (SQLite autocommit, or PostgreSQL autocommit
    with the store's schema as search path); safe to share between threads."""

    def __init__(self, db: sqlite3.Connection | psycopg.Connection[Any]) -> None:
        self._db = db
        self._p = placeholder(db)
        self._lock = threading.Lock()
        migrate(db, INCIDENTS)

    def open(self, kind: str, subject: str, at: datetime) -> None:
        """Record that `kind` of `subject` started at `at` (nothing if it is already open)."""
        if kind not in KINDS:
            raise ValueError(f"incident kind {kind!r}: not one of {', '.join(KINDS)}")
        if (kind, subject) in self.open_keys():
            return
        p = self._p
        self._run(f"INSERT INTO incidents (kind, subject, started_at, last_seen_at) "  # noqa: S608
                  f"VALUES ({p}, {p}, {p}, {p})", (kind, subject, _text(at), _text(at)))

    def record(self, incident: Incident) -> None:
        """Record a whole incident (one that could not be written while it lasted)."""
        p = self._p
        end = incident.ended_at or incident.started_at
        self._run("INSERT INTO incidents (kind, subject, started_at, ended_at, "  # noqa: S608
                  f"last_seen_at, note) VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
                  (incident.kind, incident.subject, _text(incident.started_at), _text(end),
                   _text(end), incident.note))

    def close(self, kind: str, subject: str, at: datetime, note: str = "") -> None:
        """Record that the open incident `kind` of `subject` ended at `at`."""
        p = self._p
        self._run(f"UPDATE incidents SET ended_at = {p}, last_seen_at = {p}, note = {p} "  # noqa: S608
                  f"WHERE kind = {p} AND subject = {p} AND ended_at IS NULL",
                  (_text(at), _text(at), note, kind, subject))

    def heartbeat(self, at: datetime) -> None:
        """Record that the open incidents were still open at `at`."""
        self._run(f"UPDATE incidents SET last_seen_at = {self._p} "  # noqa: S608
                  "WHERE ended_at IS NULL", (_text(at),))

    def close_left_open(self) -> int:
        """Close every incident a `serve` that died left open, at its last heartbeat; how
        many."""
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE incidents SET ended_at = last_seen_at, note = {self._p} "  # noqa: S608
                "WHERE ended_at IS NULL", (LEFT_OPEN_NOTE,))
            return int(cursor.rowcount or 0)

    def close_all(self, at: datetime, note: str = STOPPED_NOTE) -> None:
        """Close every open incident at `at` (a clean stop)."""
        p = self._p
        self._run(f"UPDATE incidents SET ended_at = {p}, last_seen_at = {p}, note = {p} "  # noqa: S608
                  "WHERE ended_at IS NULL", (_text(at), _text(at), note))

    def open_keys(self) -> set[tuple[str, str]]:
        """(kind, subject) of every open incident."""
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, subject FROM incidents WHERE ended_at IS NULL").fetchall()
        return {(str(kind), str(subject)) for kind, subject in rows}

    def incidents(self, *, gte: datetime | None = None,
                  lt: datetime | None = None) -> list[Incident]:
        """Incidents that overlap [`gte`, `lt`) (every one without bounds), oldest first."""
        p = self._p
        where, params = [], []
        if gte is not None:
            where.append(f"(ended_at IS NULL OR ended_at > {p})")
            params.append(_text(gte))
        if lt is not None:
            where.append(f"started_at < {p}")
            params.append(_text(lt))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, subject, started_at, ended_at, note FROM incidents"  # noqa: S608
                f"{clause} ORDER BY started_at, id", params).fetchall()
        return [Incident(str(k), str(s), _time(a), _time(e) if e is not None else None, str(n))
                for k, s, a, e, n in rows]

    def lost(self, exc: BaseException) -> bool:
        """Whether `exc` means this store's connection is gone (a PostgreSQL restart), not
        that a statement failed on a live one."""
        if isinstance(self._db, sqlite3.Connection):
            return False
        return connection_lost(exc, self._db)

    def close_connection(self) -> None:
        """Release the connection."""
        with self._lock:
            self._db.close()

    def _run(self, statement: str, params: Sequence[object]) -> None:
        with self._lock:
            self._db.execute(statement, params)


def open_incident_store(store: StoreConfig) -> IncidentStore:
    """The incidents table of the event store (created or upgraded on first open); raises
    sqlite3.Error / psycopg.Error if the store cannot be reached."""
    if store.kind == "sqlite":
        db = sqlite3.connect(Path(store.sqlite_path or ""), isolation_level=None,
                             check_same_thread=False, timeout=10)
        return IncidentStore(db)
    schema = store.schema_name or "public"
    conninfo = psycopg.conninfo.make_conninfo(store.conninfo(), connect_timeout=5,
                                              options=f"-c search_path={schema}")
    remote = psycopg.connect(conninfo, autocommit=True)
    try:
        remote.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        return IncidentStore(remote)
    except BaseException:
        remote.close()
        raise


def _text(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _time(value: object) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)
