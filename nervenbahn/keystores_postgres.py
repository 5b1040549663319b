"""Wrapped per-person data keys in the event store's PostgreSQL schema
(`domain.personal_data.KeyStore`). What destroying a key leaves behind in PostgreSQL's files
(until VACUUM) and how to deal with it: docs/privacy.md.

The connection comes back after a loss (`schemas.postgres.PostgresConnection`). Every method
is idempotent — a read, inserts that skip existing keys, deletes by key, an erasure record that
skips an existing one — so a call that meets a lost connection runs again once on a new one;
only a second loss in a row reaches the caller (`DatabaseUnavailableError`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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

    def discard_many(self, person_ids: Iterable[UUID]) -> None:
        statement = self._sql("DELETE FROM {}.person_keys WHERE person_id = %s AND NOT found")
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

    def store_new(
        self, person_ids: Sequence[UUID], make_key: Callable[[UUID], bytes]
    ) -> tuple[list[UUID], list[UUID]]:
        """(See the port.) One statement, one round trip: a key is made for every person, the
        tombstones are looked up and, unless one of the persons was erased, the keys of those
        without one are inserted and those of the others marked as found. A key another
        command stores meanwhile is waited for and found, not overwritten. The statement runs
        on its own, so it is atomic; after a lost connection it runs again (a second run finds
        what the first stored: those keys stay, as found keys do)."""
        wanted = list(dict.fromkeys(person_ids))
        if not wanted:
            return [], []
        statement = self._sql(
            "WITH wanted (person_id, wrapped_key) AS ("
            " SELECT * FROM unnest(%s::uuid[], %s::bytea[])), "
            "erased AS (SELECT w.person_id FROM wanted w"
            " JOIN {0}.erased_persons e ON e.person_id = w.person_id"
            " WHERE NOT EXISTS (SELECT 1 FROM {0}.person_keys k"
            " WHERE k.person_id = w.person_id)), "
            "stored AS (INSERT INTO {0}.person_keys AS k (person_id, wrapped_key)"
            " SELECT person_id, wrapped_key FROM wanted WHERE NOT EXISTS (SELECT 1 FROM erased)"
            " ON CONFLICT (person_id) DO UPDATE SET found = true"
            " RETURNING k.person_id, k.found) "
            "SELECT person_id, 'erased' FROM erased UNION ALL "
            "SELECT person_id, CASE WHEN found THEN 'found' ELSE 'stored' END FROM stored"
        )
        keys = [make_key(person_id) for person_id in wanted]
        rows = self._db.run(lambda db: db.execute(statement, (wanted, keys)).fetchall(),
                            idempotent=True)
        outcome = dict(rows)
        return ([p for p in wanted if outcome.get(p) == "stored"],
                [p for p in wanted if outcome.get(p) == "erased"])

    def close(self) -> None:
        self._db.close()


def _many(
    statement: sql.Composed, rows: list[tuple[Any, ...]], db: psycopg.Connection[Any]
) -> None:
    """One statement for each row, in one transaction."""
    with db.transaction(), db.cursor() as cursor:
        cursor.executemany(statement, rows)
