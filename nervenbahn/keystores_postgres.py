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

_PERSON_LOCKS = 0x6E626B73
"""The advisory locks of persons' keys (`pg_advisory_xact_lock(_PERSON_LOCKS, n)`, n from the
person id): every transaction that writes a person's key or tombstone takes its persons' locks
first, in ascending order."""


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
        wanted = list(dict.fromkeys(person_ids))
        if not wanted:
            return
        statement = self._sql(
            "DELETE FROM {}.person_keys WHERE person_id = ANY(%s::uuid[]) AND NOT found")

        def discard(db: psycopg.Connection[Any]) -> None:
            with db.transaction():
                self._lock(db, wanted)
                db.execute(statement, (wanted,))

        self._db.run(discard, idempotent=True)

    def destroy(self, person_id: UUID) -> bool:
        def erase(db: psycopg.Connection[Any]) -> int:
            with db.transaction():
                self._lock(db, [person_id])
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
        """(See the port.) One transaction: the persons' advisory locks (as an erasure and
        a discard take them: none of them can run between the tombstones read and the keys
        written, and two writes naming the same persons wait for each other instead of
        deadlocking on the key rows), then one statement that looks up the tombstones and,
        unless one of the persons was erased, inserts the keys of those without one and marks
        the others' as found (a key marked already is left as it is). After a lost connection
        it runs again: a second run finds what the first stored, and those keys stay, as
        found keys do."""
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
            " ON CONFLICT (person_id) DO UPDATE SET found = true WHERE NOT k.found"
            " RETURNING k.person_id, k.found) "
            "SELECT person_id, 'erased' FROM erased UNION ALL "
            "SELECT person_id, CASE WHEN found THEN 'found' ELSE 'stored' END FROM stored"
        )
        keys = [make_key(person_id) for person_id in wanted]

        def store(db: psycopg.Connection[Any]) -> list[tuple[UUID, str]]:
            with db.transaction():
                self._lock(db, wanted)
                return db.execute(statement, (wanted, keys)).fetchall()

        outcome = dict(self._db.run(store, idempotent=True))
        return ([p for p in wanted if outcome.get(p) == "stored"],
                [p for p in wanted if outcome.get(p) == "erased"])

    @staticmethod
    def _lock(db: psycopg.Connection[Any], person_ids: Sequence[UUID]) -> None:
        """Take the persons' advisory locks for the rest of the transaction, in ascending
        order (`_PERSON_LOCKS`)."""
        numbers = sorted({int.from_bytes(p.bytes[:4], "big", signed=True) for p in person_ids})
        db.execute("SELECT pg_advisory_xact_lock(%s, n) FROM unnest(%s::int4[]) AS u (n)",
                   (_PERSON_LOCKS, numbers))

    def close(self) -> None:
        self._db.close()

