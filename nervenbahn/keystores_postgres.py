"""Wrapped per-person data keys in the event store's PostgreSQL schema
(`domain.personal_data.KeyStore`). What destroying a key leaves behind in PostgreSQL's files
(until VACUUM) and how to deal with it: docs/privacy.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from uuid import UUID

import psycopg
from psycopg import sql

from domain.personal_data import KeyStore
from nervenbahn.config import StoreConfig
from nervenbahn.keystores import PERSON_KEYS
from schemas.sql import migrate_postgres

__all__ = ["PostgresKeyStore"]


class PostgresKeyStore(KeyStore):
    """Wrapped data keys in the PostgreSQL database (and schema) of the event store."""

    def __init__(self, config: StoreConfig) -> None:
        self._lock = threading.Lock()
        self._conninfo = config.conninfo()
        self._schema = sql.Identifier(config.schema_name or "public")
        self._db = psycopg.connect(self._conninfo, autocommit=True)
        migrate_postgres(self._db, config.schema_name or "public", PERSON_KEYS)

    def _sql(self, template: str) -> sql.Composed:
        return sql.SQL(template).format(self._schema)

    def load(self, person_id: UUID) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                self._sql("SELECT wrapped_key FROM {}.person_keys WHERE person_id = %s"),
                (person_id,),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def store_many(self, keys: Iterable[tuple[UUID, bytes]]) -> None:
        rows = list(keys)
        with self._lock, self._db.transaction(), self._db.cursor() as cursor:
            cursor.executemany(
                self._sql(
                    "INSERT INTO {}.person_keys (person_id, wrapped_key) "
                    "VALUES (%s, %s) ON CONFLICT (person_id) DO NOTHING"
                ),
                rows,
            )

    def discard_many(self, person_ids: Iterable[UUID]) -> None:
        with self._lock, self._db.transaction(), self._db.cursor() as cursor:
            cursor.executemany(
                self._sql("DELETE FROM {}.person_keys WHERE person_id = %s"),
                [(p,) for p in person_ids],
            )

    def destroy(self, person_id: UUID) -> bool:
        with self._lock, self._db.transaction():
            deleted = self._db.execute(
                self._sql("DELETE FROM {}.person_keys WHERE person_id = %s"), (person_id,)
            ).rowcount
            self._db.execute(
                self._sql(
                    "INSERT INTO {}.erased_persons (person_id) VALUES (%s) "
                    "ON CONFLICT (person_id) DO NOTHING"
                ),
                (person_id,),
            )
        return deleted > 0

    def is_erased(self, person_id: UUID) -> bool:
        with self._lock:
            row = self._db.execute(
                self._sql("SELECT 1 FROM {}.erased_persons WHERE person_id = %s"), (person_id,)
            ).fetchone()
        return row is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()
