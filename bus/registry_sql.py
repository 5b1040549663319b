"""Embedded schema registry, kept in the event store's own database (SQLite or PostgreSQL).

No registry server to run: the table `schema_registry` sits beside the events. Ids are
global, as in a Confluent registry: the same schema gets the same id under every subject,
a new schema the next free id. Registration takes a write lock (SQLite `BEGIN IMMEDIATE`,
PostgreSQL `LOCK TABLE ... SHARE ROW EXCLUSIVE`), so that concurrent producers never hand out
one id twice or skip a compatibility check. Connections are opened on first use.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

from bus.compatibility import (
    SchemaProblem,
    canonical_text,
    compatibility_problems,
    ensure_compatible,
    fingerprint,
    validate_schema,
)
from bus.errors import RegistryError, SchemaError, SchemaNotFoundError
from bus.registry import SchemaRegistry, SchemaVersion
from schemas.sql import Component, Migration, migrate_postgres, migrate_sqlite

__all__ = ["SCHEMA_REGISTRY", "EmbeddedRegistry", "PostgresSchemaRegistry", "SQLiteSchemaRegistry"]

TABLE = "schema_registry"


@dataclass(frozen=True)
class _Statements:
    """The registry's statements, written by each backend in its own SQL dialect."""

    by_subject: str
    id_of_subject_schema: str
    id_of_schema: str
    next_id: str
    insert: str
    schema_by_id: str
    subjects: str


_SQLITE = _Statements(
    by_subject="SELECT version, schema_id, fingerprint, schema_text FROM schema_registry "
    "WHERE subject = ? ORDER BY version",
    id_of_subject_schema="SELECT schema_id FROM schema_registry "
    "WHERE subject = ? AND fingerprint = ?",
    id_of_schema="SELECT schema_id FROM schema_registry WHERE fingerprint = ? LIMIT 1",
    next_id="SELECT COALESCE(MAX(schema_id), 0) + 1 FROM schema_registry",
    insert="INSERT INTO schema_registry (subject, version, schema_id, fingerprint, schema_text) "
    "VALUES (?, ?, ?, ?, ?)",
    schema_by_id="SELECT schema_text FROM schema_registry WHERE schema_id = ? LIMIT 1",
    subjects="SELECT DISTINCT subject FROM schema_registry ORDER BY subject",
)

# `{t}` is the schema-qualified table, composed with psycopg.sql.Identifier.
_POSTGRES = _Statements(
    by_subject="SELECT version, schema_id, fingerprint, schema_text FROM {t} "
    "WHERE subject = %s ORDER BY version",
    id_of_subject_schema="SELECT schema_id FROM {t} WHERE subject = %s AND fingerprint = %s",
    id_of_schema="SELECT schema_id FROM {t} WHERE fingerprint = %s LIMIT 1",
    next_id="SELECT COALESCE(MAX(schema_id), 0) + 1 FROM {t}",
    insert="INSERT INTO {t} (subject, version, schema_id, fingerprint, schema_text) "
    "VALUES (%s, %s, %s, %s, %s)",
    schema_by_id="SELECT schema_text FROM {t} WHERE schema_id = %s LIMIT 1",
    subjects="SELECT DISTINCT subject FROM {t} ORDER BY subject",
)

SCHEMA_REGISTRY = Component(
    "schema_registry",
    [
        Migration(
            1,
            "the embedded schema registry",
            sqlite=[
                "CREATE TABLE IF NOT EXISTS schema_registry ("
                "subject TEXT NOT NULL, version INTEGER NOT NULL, "
                "schema_id INTEGER NOT NULL, fingerprint TEXT NOT NULL, "
                "schema_text TEXT NOT NULL, "
                "registered_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), "
                "PRIMARY KEY (subject, version), UNIQUE (subject, fingerprint))",
                "CREATE INDEX IF NOT EXISTS schema_registry_schema_id "
                "ON schema_registry (schema_id)",
            ],
            postgres=[
                "CREATE TABLE IF NOT EXISTS {schema}.schema_registry ("
                "subject text NOT NULL, version integer NOT NULL, "
                "schema_id integer NOT NULL, fingerprint text NOT NULL, "
                "schema_text text NOT NULL, "
                "registered_at timestamptz NOT NULL DEFAULT now(), "
                "PRIMARY KEY (subject, version), UNIQUE (subject, fingerprint))",
                "CREATE INDEX IF NOT EXISTS schema_registry_schema_id "
                "ON {schema}.schema_registry (schema_id)",
            ],
        )
    ],
    tables=[TABLE],
)
"""The registry's table, beside the events."""


class _Rows(Protocol):
    """What the shared algorithm needs of a database: run a statement, get its rows."""

    def __call__(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class EmbeddedRegistry(SchemaRegistry):
    """The registry algorithm on a SQL table; a subclass supplies the database and its SQL."""

    _sql: _Statements

    @abstractmethod
    def _transaction(self, *, write: bool) -> AbstractContextManager[_Rows]:
        """A transaction on the registry table, locked against other writers if `write`;
        database errors leave it as RegistryError."""

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        problems = validate_schema(subject, schema)
        if problems:
            raise SchemaError(str(problems[0]))
        key = fingerprint(schema)
        with self._transaction(write=False) as rows:
            known = rows(self._sql.id_of_subject_schema, (subject, key))
        if known:
            return int(known[0][0])
        with self._transaction(write=True) as rows:
            versions = rows(self._sql.by_subject, (subject,))
            for _, schema_id, stored_key, _ in versions:
                if stored_key == key:  # registered meanwhile by another producer
                    return int(schema_id)
            earlier = [(int(version), json.loads(text)) for version, _, _, text in versions]
            ensure_compatible(subject, schema, earlier)
            same = rows(self._sql.id_of_schema, (key,))
            schema_id = int(same[0][0] if same else rows(self._sql.next_id)[0][0])
            version = int(versions[-1][0]) + 1 if versions else 1
            rows(self._sql.insert, (subject, version, schema_id, key, canonical_text(schema)))
        return schema_id

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        with self._transaction(write=False) as rows:
            found = rows(self._sql.schema_by_id, (schema_id,))
        if not found:
            raise SchemaNotFoundError(f"no schema with id {schema_id} in {self.describe()}")
        schema: dict[str, Any] = json.loads(found[0][0])
        return schema

    def versions(self, subject: str) -> list[SchemaVersion]:
        with self._transaction(write=False) as rows:
            found = rows(self._sql.by_subject, (subject,))
        return [
            SchemaVersion(int(version), int(schema_id), json.loads(text))
            for version, schema_id, _, text in found
        ]

    def subjects(self) -> list[str]:
        with self._transaction(write=False) as rows:
            return [str(subject) for (subject,) in rows(self._sql.subjects)]

    def check_compatibility(self, subject: str, schema: dict[str, Any]) -> list[SchemaProblem]:
        problems = validate_schema(subject, schema)
        if problems:
            return problems
        key = fingerprint(schema)
        versions = self.versions(subject)
        if any(fingerprint(version.schema) == key for version in versions):
            return []
        return compatibility_problems(
            subject, schema, [(version.version, version.schema) for version in versions]
        )

    @abstractmethod
    def describe(self) -> str:
        """Where the registry is kept, for messages (no secrets)."""


class SQLiteSchemaRegistry(EmbeddedRegistry):
    """The registry in a SQLite file (normally the event store's), or `:memory:` for tests."""

    _sql = _SQLITE

    def __init__(self, path: str | Path, *, timeout: float = 10.0) -> None:
        self._path = str(path)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def describe(self) -> str:
        return f"SQLite {self._path}"

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[_Rows]:
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


class PostgresSchemaRegistry(EmbeddedRegistry):
    """The registry in a PostgreSQL schema (normally the event store's)."""

    _sql = _POSTGRES

    def __init__(self, conninfo: str, *, schema: str = "public", connect_timeout: int = 5) -> None:
        self._conninfo = conninfo
        self._schema_name = schema
        self._table = sql.Identifier(schema, TABLE)
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._db: psycopg.Connection[Any] | None = None

    def describe(self) -> str:
        try:
            info = psycopg.conninfo.conninfo_to_dict(self._conninfo)
        except psycopg.ProgrammingError:
            info = {}
        where = f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
        return f"PostgreSQL {where} schema {self._schema_name}"

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[_Rows]:
        with self._lock:
            try:
                db = self._connection()

                def rows(statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
                    query = sql.SQL(statement).format(t=self._table)
                    cursor = db.execute(query, tuple(params))
                    return cursor.fetchall() if cursor.description else []

                with db.transaction():
                    if write:
                        db.execute(
                            sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(
                                self._table
                            )
                        )
                    yield rows
            except psycopg.Error as exc:
                self._forget_broken_connection()
                raise RegistryError(
                    f"schema registry in {self.describe()} failed: {exc}"
                ) from exc

    def _connection(self) -> psycopg.Connection[Any]:
        if self._db is None:
            db = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
            )
            try:
                migrate_postgres(db, self._schema_name, SCHEMA_REGISTRY)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _forget_broken_connection(self) -> None:
        if self._db is not None and (self._db.closed or self._db.broken):
            self._db.close()
            self._db = None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
