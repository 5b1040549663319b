"""Where a projection keeps its tables: a SQLite file of its own, or a PostgreSQL schema.

`NERVENBAHN_PROJECTIONS_STORE` unset: each read model lives in a SQLite file of its own,
`<store folder>/projections/<name>.db`, replaced as a whole by a rebuild. Set to
`postgresql://user@host:5432/db?schema=NAME`: every read model's tables lie in that one schema
(table names are distinct per projection; the consumers' bookkeeping tables are keyed by group
id, `projection-<name>`); a rebuild empties and refills the projection's tables and forgets its
group's bookkeeping in one transaction, so readers see the old rows until it commits.

The projections write their SQL once, with `?` placeholders, for both backends: on PostgreSQL
they get a `PortableConnection`, which turns `?` into `%s`. Keep that SQL portable: no `?` or
`%` inside string literals, no `INSERT OR …`, no `WITHOUT ROWID`, no SQLite date functions,
dates as ISO text (fixed width: compared as text, they order as dates), `ON CONFLICT … excluded`
is fine on both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import psycopg
import psycopg.conninfo
from psycopg import sql

from bus.effects import EffectStore, PartitionMark, PostgresEffectStore
from schemas.sql import Component, migrate_postgres

if TYPE_CHECKING:
    from projections.framework import Projection

__all__ = [
    "PortableConnection",
    "PostgresReadModelStore",
    "PostgresReadModels",
    "ReadModelTarget",
    "Rows",
    "SQLConnection",
    "read_model_built",
    "read_model_connection",
]


class Rows(Protocol):
    """What a query answers: a cursor (sqlite3 or psycopg)."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SQLConnection(Protocol):
    """What a projection writes and reads through: `execute` with `?` placeholders."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Rows: ...


@dataclass(frozen=True)
class PostgresReadModels:
    """The PostgreSQL schema that holds every read model."""

    conninfo: str
    schema: str

    def connect(self, *, read_only: bool = False) -> psycopg.Connection[Any]:
        """A connection (autocommit) whose search path is the schema."""
        options = f"-c search_path={self.schema}"  # a checked identifier (StoreConfig.parse)
        if read_only:
            options += " -c default_transaction_read_only=on"
        conninfo = psycopg.conninfo.make_conninfo(self.conninfo, options=options)
        return psycopg.connect(conninfo, autocommit=True)


ReadModelTarget = Path | PostgresReadModels
"""Where a read model lives: its SQLite file, or the PostgreSQL schema of all read models."""


class PortableConnection:
    """A psycopg connection that takes the projections' `?`-placeholder SQL (composed SQL,
    such as the bookkeeping's, passes unchanged)."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(
        self, query: str | sql.Composed, parameters: Sequence[Any] = (), /
    ) -> psycopg.Cursor[Any]:
        if isinstance(query, str):
            query = query.replace("%", "%%").replace("?", "%s")
        return self.raw.execute(query, parameters)

    def close(self) -> None:
        self.raw.close()


class PostgresReadModelStore(EffectStore):
    """A projection's consumer store in the read models' schema: the bookkeeping of
    `PostgresEffectStore`, handing out `PortableConnection`s."""

    def __init__(self, target: PostgresReadModels) -> None:
        conninfo = psycopg.conninfo.make_conninfo(
            target.conninfo, options=f"-c search_path={target.schema}"
        )
        self._schema = target.schema
        self._inner = PostgresEffectStore(conninfo, target.schema)
        self.db = PortableConnection(self._inner.db)

    @contextmanager
    def transaction(self) -> Iterator[PortableConnection]:
        with self._inner.transaction() as raw:
            yield PortableConnection(raw)

    def savepoint(self, tx: PortableConnection) -> AbstractContextManager[None]:
        context: AbstractContextManager[None] = self._inner.savepoint(tx.raw)
        return context

    def seen(self, tx: PortableConnection, group: str, event_id: UUID) -> bool:
        return self._inner.seen(tx.raw, group, event_id)

    def mark(self, tx: PortableConnection, group: str, event_id: UUID) -> None:
        self._inner.mark(tx.raw, group, event_id)

    def advance(
        self, tx: PortableConnection, group: str, topic: str, partition: int, mark: PartitionMark
    ) -> None:
        self._inner.advance(tx.raw, group, topic, partition, mark)

    def offsets(self, group: str) -> dict[tuple[str, int], PartitionMark]:
        return self._inner.offsets(group)

    def migrate(self, component: Component) -> None:
        """Bring a read model's tables in the schema to the newest version."""
        migrate_postgres(self._inner.db, self._schema, component)

    def forget(self, tx: PortableConnection, projection: Projection) -> None:
        """Empty the projection's tables and forget what its consumer group processed."""
        for table in projection.tables:
            tx.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
        for table in ("processed_events", "consumer_offsets"):
            tx.execute(f"DELETE FROM {table} WHERE group_id = ?", (projection.group,))  # noqa: S608

    def close(self) -> None:
        self._inner.close()


def read_model_built(target: ReadModelTarget, table: str) -> bool:
    """True if the read model exists: its file, or its (first) table in the schema."""
    if isinstance(target, Path):
        return target.is_file()
    with target.connect(read_only=True) as db:
        row = db.execute("SELECT to_regclass(%s)", (f"{target.schema}.{table}",)).fetchone()
    return row is not None and row[0] is not None


@contextmanager
def read_model_connection(target: ReadModelTarget) -> Iterator[SQLConnection]:
    """A read-only connection to a read model, for its query functions; closed on exit."""
    if isinstance(target, Path):
        db = sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=10)
        try:
            yield db
        finally:
            db.close()
        return
    portable = PortableConnection(target.connect(read_only=True))
    try:
        yield portable
    finally:
        portable.close()
