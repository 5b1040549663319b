"""The embedded schema registry in a PostgreSQL schema (`bus.registry_sql.EmbeddedRegistry`),
normally the event store's: registration under `LOCK TABLE ... SHARE ROW EXCLUSIVE`. Its
connection is made on first use and again after a loss (`schemas.postgres.PostgresConnection`):
a transaction that cannot begin on the old one begins on a new one; one that loses it half-way
fails (`RegistryError`) and the next one connects again."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
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
from schemas.catalogue import SchemaCatalogue
from schemas.postgres import DatabaseUnavailableError, PostgresConnection
from schemas.sql import migrate_postgres

__all__ = ["PostgresSchemaRegistry"]

# `{t}` is the schema-qualified table, composed with psycopg.sql.Identifier.
_POSTGRES = RegistryStatements(
    by_subject="SELECT version, schema_id, fingerprint, schema_text FROM {t} "
    "WHERE subject = %s ORDER BY version",
    id_of_subject_schema="SELECT schema_id FROM {t} WHERE subject = %s AND fingerprint = %s",
    id_of_schema="SELECT schema_id FROM {t} WHERE fingerprint = %s LIMIT 1",
    next_id="SELECT COALESCE(MAX(schema_id), %s) + 1 FROM {t} WHERE schema_id >= %s",
    insert="INSERT INTO {t} (subject, version, schema_id, fingerprint, schema_text) "
    "VALUES (%s, %s, %s, %s, %s)",
    schema_by_id="SELECT schema_text FROM {t} WHERE schema_id = %s LIMIT 1",
    subjects="SELECT DISTINCT subject FROM {t} ORDER BY subject",
)


class PostgresSchemaRegistry(EmbeddedRegistry):
    """The registry in a PostgreSQL schema (normally the event store's)."""

    _sql = _POSTGRES

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "public",
        connect_timeout: int | None = None,
        catalogue: SchemaCatalogue | None = None,
    ) -> None:
        self._catalogue = catalogue
        if connect_timeout is not None:
            conninfo = psycopg.conninfo.make_conninfo(conninfo, connect_timeout=connect_timeout)
        self._schema_name = schema
        self._table = sql.Identifier(schema, TABLE)
        self._db = PostgresConnection(
            conninfo, prepare=partial(migrate_postgres, schema=schema, component=SCHEMA_REGISTRY)
        )

    def describe(self) -> str:
        return f"PostgreSQL {self._db.describe()} schema {self._schema_name}"

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[RegistryRows]:
        try:
            with self._db.transaction() as db:

                def rows(statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
                    query = sql.SQL(statement).format(t=self._table)
                    cursor = db.execute(query, tuple(params))
                    return cursor.fetchall() if cursor.description else []

                if write:
                    db.execute(
                        sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(self._table)
                    )
                yield rows
        except (psycopg.Error, DatabaseUnavailableError) as exc:
            raise RegistryError(f"schema registry in {self.describe()} failed: {exc}") from exc

    def close(self) -> None:
        self._db.close()
