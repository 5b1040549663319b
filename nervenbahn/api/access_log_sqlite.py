"""The access log in a SQLite file of its own; triggers make UPDATE and DELETE fail.

The triggers stop mistakes and casual edits, not someone who can rewrite the file (a DROP
TRIGGER is enough): proof that history was not altered is the chained log of issue 5.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from nervenbahn.api.access_log import AccessEntry, AccessLog, LoggedAccess
from nervenbahn.api.errors import AccessLogUnavailableError

__all__ = ["SQLiteAccessLog"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS access_log (id INTEGER PRIMARY KEY, at TEXT NOT NULL, "
    "consumer TEXT NOT NULL, scope TEXT NOT NULL, case_id TEXT NOT NULL, "
    "person_id TEXT NOT NULL, fields TEXT NOT NULL, endpoint TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS access_log_by_person ON access_log (person_id, id)",
    "CREATE INDEX IF NOT EXISTS access_log_by_case ON access_log (case_id, id)",
    "CREATE TRIGGER IF NOT EXISTS access_log_no_update BEFORE UPDATE ON access_log "
    "BEGIN SELECT RAISE(ABORT, 'the access log is append-only: entries cannot be changed'); END",
    "CREATE TRIGGER IF NOT EXISTS access_log_no_delete BEFORE DELETE ON access_log "
    "BEGIN SELECT RAISE(ABORT, 'the access log is append-only: entries cannot be deleted'); END",
)
_COLUMNS = "id, at, consumer, scope, case_id, person_id, fields, endpoint"


class SQLiteAccessLog(AccessLog):
    """An append-only access log in a SQLite file (WAL, synchronous FULL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        with _translated(f"cannot open the access log {path}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=10
            )
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            for statement in _SCHEMA:
                self._db.execute(statement)

    def append(self, entry: AccessEntry) -> int:
        row = (
            entry.at.astimezone(UTC).isoformat(),
            entry.consumer,
            entry.scope,
            entry.case_id,
            entry.person_id,
            json.dumps(list(entry.fields)),
            entry.endpoint,
        )
        with self._lock, _translated("cannot append to the access log"):
            cursor = self._db.execute(
                "INSERT INTO access_log (at, consumer, scope, case_id, person_id, fields, "
                "endpoint) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def select(
        self,
        *,
        person_id: str | None = None,
        case_id: str | None = None,
        gt: int = 0,
        limit: int = 100,
    ) -> list[LoggedAccess]:
        query = f"SELECT {_COLUMNS} FROM access_log WHERE id > ?"  # noqa: S608
        params: list[object] = [gt]
        for column, value in (("person_id", person_id), ("case_id", case_id)):
            if value is not None:
                query += f" AND {column} = ?"  # names are ours, values are bound
                params.append(value)
        query += " ORDER BY id LIMIT ?"
        with self._lock, _translated("cannot read the access log"):
            rows = self._db.execute(query, (*params, limit)).fetchall()
        return [_logged(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """sqlite3 and OS errors become AccessLogUnavailableError, naming what failed."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise AccessLogUnavailableError(f"{what}: {exc}") from exc


def _logged(row: tuple[object, ...]) -> LoggedAccess:
    entry_id, at, consumer, scope, case_id, person_id, fields, endpoint = row
    return LoggedAccess(
        id=int(str(entry_id)),
        entry=AccessEntry(
            at=datetime.fromisoformat(str(at)),
            consumer=str(consumer),
            scope=str(scope),
            case_id=str(case_id),
            person_id=str(person_id),
            fields=tuple(json.loads(str(fields))),
            endpoint=str(endpoint),
        ),
    )
