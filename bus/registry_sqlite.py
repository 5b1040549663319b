"""The embedded schema registry in a SQLite file (`bus.registry_sql.EmbeddedRegistry`), normally
the event store's: registration in `BEGIN IMMEDIATE` transactions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bus.errors import RegistryError
from bus.registry_sql import SCHEMA_REGISTRY, EmbeddedRegistry, RegistryRows, RegistryStatements
from schemas.catalogue import SchemaCatalogue
from schemas.sql import migrate_sqlite

__all__ = ["SQLiteSchemaRegistry"]

_SQLITE = RegistryStatements(
    by_subject="SELECT version, schema_id, fingerprint, schema_text FROM schema_registry "
    "WHERE subject = ? ORDER BY version",
    id_of_subject_schema="SELECT schema_id FROM schema_registry "
    "WHERE subject = ? AND fingerprint = ?",
    id_of_schema="SELECT schema_id FROM schema_registry WHERE fingerprint = ? LIMIT 1",
    next_id="SELECT COALESCE(MAX(schema_id), ?) + 1 FROM schema_registry WHERE schema_id >= ?",
    insert="INSERT INTO schema_registry (subject, version, schema_id, fingerprint, schema_text) "
    "VALUES (?, ?, ?, ?, ?)",
    schema_by_id="SELECT schema_text FROM schema_registry WHERE schema_id = ? LIMIT 1",
    subjects="SELECT DISTINCT subject FROM schema_registry ORDER BY subject",
)


class SQLiteSchemaRegistry(EmbeddedRegistry):
    """The registry in a SQLite file (normally the event store's), or `:memory:` for tests."""

    _sql = _SQLITE

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 10.0,
        catalogue: SchemaCatalogue | None = None,
    ) -> None:
        self._catalogue = catalogue
        self._path = str(path)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def describe(self) -> str:
        return f"SQLite {self._path}"

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[RegistryRows]:
        with self._lock:
            try:
                db = self._connection()

                def rows(statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
                    return db.execute(statement, tuple(params)).fetchall()

                if not write:
                    yield rows
                    return
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield rows
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise RegistryError(
                    f"schema registry in {self.describe()} failed: {exc}"
                ) from exc

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(
                self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            try:
                migrate_sqlite(db, SCHEMA_REGISTRY)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
