"""Wrapped per-person data keys in the event store's PostgreSQL schema
(`domain.personal_data.KeyStore`). What destroying a key leaves behind in PostgreSQL's files
(until VACUUM) and how to deal with it: docs/privacy.md.

The connection comes back after a loss (`schemas.postgres.PostgresConnection`). Every method
is idempotent — a read, inserts that skip existing keys, deletes by key, an erasure record that
skips an existing one — so a call that meets a lost connection runs again once on a new one;
only a second loss in a row reaches the caller (`DatabaseUnavailableError`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from domain.personal_data import KeyStore
from nervenbahn.config import StoreConfig
from nervenbahn.keystores import PERSON_KEYS
from schemas.postgres import PostgresConnection
from schemas.sql import migrate_postgres

__all__ = ["PostgresKeyStore"]


class PostgresKeyStore(KeyStore):
    """Wrapped data keys in the PostgreSQL database (and schema) of the event store."""

    def __init__(self, config: StoreConfig) -> None:
        self._schema = sql.Identifier(config.schema_name or "public")
        self._db = PostgresConnection(
            config.conninfo(),
            prepare=partial(migrate_postgres, schema=config.schema_name or "public",
                            component=PERSON_KEYS),
        )
        self._db.connection()  # the tables exist once the key store is opened

    def _sql(self, template: str) -> sql.Composed:
        return sql.SQL(template).format(self._schema)

    def load(self, person_id: UUID) -> bytes | None:
        query = self._sql("SELECT wrapped_key FROM {}.person_keys WHERE person_id = %s")
        row = self._db.run(lambda db: db.execute(query, (person_id,)).fetchone(),
                           idempotent=True)
        return None if row is None else bytes(row[0])

    def store_many(self, keys: Iterable[tuple[UUID, bytes]]) -> None:
        rows = list(keys)
        statement = self._sql(
            "INSERT INTO {}.person_keys (person_id, wrapped_key) "
            "VALUES (%s, %s) ON CONFLICT (person_id) DO NOTHING"
        )
        self._db.run(partial(_many, statement, rows), idempotent=True)

    def discard_many(self, person_ids: Iterable[UUID]) -> None:
        statement = self._sql("DELETE FROM {}.person_keys WHERE person_id = %s")
        self._db.run(partial(_many, statement, [(p,) for p in person_ids]), idempotent=True)

    def destroy(self, person_id: UUID) -> bool:
        def erase(db: psycopg.Connection[Any]) -> int:
            with db.transaction():
                deleted = db.execute(
                    self._sql("DELETE FROM {}.person_keys WHERE person_id = %s"), (person_id,)
                ).rowcount
                db.execute(
                    self._sql(
                        "INSERT INTO {}.erased_persons (person_id) VALUES (%s) "
                        "ON CONFLICT (person_id) DO NOTHING"
                    ),
                    (person_id,),
                )
            return deleted

        return self._db.run(erase, idempotent=True) > 0

    def is_erased(self, person_id: UUID) -> bool:
        query = self._sql("SELECT 1 FROM {}.erased_persons WHERE person_id = %s")
        row = self._db.run(lambda db: db.execute(query, (person_id,)).fetchone(),
                           idempotent=True)
        return row is not None

    def lacking(self, person_ids: Sequence[UUID]) -> tuple[list[UUID], set[UUID]]:
        """(See the port.) One statement, one round trip, one snapshot for all of them: a case
        opened with its household looked each member up twice (a key, then a tombstone)."""
        wanted = list(dict.fromkeys(person_ids))
        if not wanted:
            return [], set()
        query = self._sql(
            "SELECT p.person_id, k.person_id IS NOT NULL, e.person_id IS NOT NULL "
            "FROM unnest(%s::uuid[]) AS p (person_id) "
            "LEFT JOIN {0}.person_keys k ON k.person_id = p.person_id "
            "LEFT JOIN {0}.erased_persons e ON e.person_id = p.person_id"
        )
        rows = self._db.run(lambda db: db.execute(query, (wanted,)).fetchall(), idempotent=True)
        keyed = {person_id for person_id, has_key, _ in rows if has_key}
        without = [person_id for person_id in wanted if person_id not in keyed]
        return without, {person_id for person_id, has_key, erased in rows
                         if erased and not has_key}

    def close(self) -> None:
        self._db.close()


def _many(
    statement: sql.Composed, rows: list[tuple[Any, ...]], db: psycopg.Connection[Any]
) -> None:
    """One statement for each row, in one transaction."""
    with db.transaction(), db.cursor() as cursor:
        cursor.executemany(statement, rows)
