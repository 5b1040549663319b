"""The embedded schema registry in a PostgreSQL schema (`bus.registry_sql.EmbeddedRegistry`),
normally the event store's: registration under `LOCK TABLE ... SHARE ROW EXCLUSIVE`."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from bus.errors import RegistryError
from bus.registry_sql import (
    SCHEMA_REGISTRY,
    TABLE,
    EmbeddedRegistry,
    RegistryRows,
    RegistryStatements,
)
from schemas.sql import migrate_postgres

__all__ = ["PostgresSchemaRegistry"]

# `{t}` is the schema-qualified table, composed with psycopg.sql.Identifier.
_POSTGRES = RegistryStatements(
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
    def _transaction(self, *, write: bool) -> Iterator[RegistryRows]:
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
