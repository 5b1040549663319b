"""Where a projection keeps its tables: a SQLite file of its own, or a PostgreSQL schema.

`NERVENBAHN_PROJECTIONS_STORE` unset: each read model lives in a SQLite file of its own,
`<store folder>/projections/<name>.db`, replaced as a whole by a rebuild. Set to
`postgresql://user@host:5432/db?schema=NAME`: every read model's tables lie in that one schema
(table names are distinct per projection; the consumers' bookkeeping tables are keyed by group
id, `projection-<name>`); a rebuild empties and refills the projection's tables and forgets its
group's bookkeeping in one transaction, so readers see the old rows until it commits.

The projections write their SQL once for both backends, each statement with the placeholder of
the connection it is handed (`schemas.sql.placeholder`: `?` sqlite3, `%s` psycopg); no SQL text
is rewritten. Keep that SQL portable: no `%` inside string literals (pass it as a parameter),
no `INSERT OR …`, no `WITHOUT ROWID`, no SQLite date functions, dates as ISO text (fixed
width: compared as text, they order as dates), `ON CONFLICT … excluded` is fine on both.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import psycopg
import psycopg.conninfo
from psycopg import sql

from bus.effects_postgres import PostgresEffectStore
from projections.errors import ReadModelUnreadableError
from schemas.sql import Component, Migration, migrate_postgres, placeholder

if TYPE_CHECKING:
    from projections.framework import Projection

__all__ = [
    "READ_MODEL_PROGRESS",
    "PostgresReadModelStore",
    "PostgresReadModels",
    "ReadModelProgress",
    "ReadModelTarget",
    "Rows",
    "SQLConnection",
    "execute_many",
    "fetch_all",
    "open_read_model",
    "read_model_built",
    "read_model_connection",
    "read_notification_id",
    "read_progress",
    "record_progress",
]

READ_MODEL_PROGRESS = Component(
    "read_model_progress",
    [
        Migration(
            1,
            "each read model's freshness: the recorded time of the newest event it applied "
            "(X-Read-Model-As-Of) and when it last applied one (stalled consumers)",
            sqlite=[
                "CREATE TABLE IF NOT EXISTS read_model_progress (projection TEXT PRIMARY KEY, "
                "as_of TEXT, applied_at TEXT NOT NULL)",
            ],
            postgres=[
                "CREATE TABLE IF NOT EXISTS {schema}.read_model_progress (projection text "
                "PRIMARY KEY, as_of text, applied_at text NOT NULL)",
            ],
        ),
        Migration(
            2,
            "the id of the last notification of the event store a rebuild or catch-up applied "
            "(a read model fed from the store reads only the notifications after it)",
            sqlite=["ALTER TABLE read_model_progress ADD COLUMN notification_id INTEGER"],
            postgres=[
                "ALTER TABLE {schema}.read_model_progress ADD COLUMN IF NOT EXISTS "
                "notification_id bigint",
            ],
        ),
    ],
    tables=["read_model_progress"],
)
"""One row per read model, beside its tables (its SQLite file, or the read models' schema),
written in the transaction that applies its events. Times are UTC text of fixed width
(`_TIME_FORMAT`), so that both backends compare them as text."""

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_RECORD_PROGRESS = (
    "INSERT INTO read_model_progress (projection, as_of, applied_at, notification_id) "
    "VALUES ({p}, {p}, {p}, {p}) "
    "ON CONFLICT (projection) DO UPDATE SET as_of = CASE WHEN read_model_progress.as_of IS "
    "NULL OR excluded.as_of > read_model_progress.as_of THEN excluded.as_of ELSE "
    "read_model_progress.as_of END, applied_at = excluded.applied_at, notification_id = "
    "COALESCE(excluded.notification_id, read_model_progress.notification_id)"
)


class Rows(Protocol):
    """What a query answers: a cursor (sqlite3 or psycopg)."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SQLConnection(Protocol):
    """What a projection writes and reads through: a sqlite3 or psycopg connection, whose
    statements carry its own placeholder (`schemas.sql.placeholder`)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Rows: ...


@dataclass(frozen=True)
class PostgresReadModels:
    """The PostgreSQL schema that holds every read model."""

    conninfo: str
    schema: str
    pool_size: int = 5
    """At most this many connections a process keeps open for its readers of the read
    models (`projections.read_connections`); NERVENBAHN_POSTGRES_POOL_SIZE."""
    read_timeout_s: int = 10
    """How long one statement of those pooled readers may take, lock waits included, before
    the server cancels it (the reader gets `ReadModelUnreadableError`, the API a 503);
    NERVENBAHN_POSTGRES_READ_TIMEOUT."""

    def connect(self, *, read_only: bool = False, timed: bool = False) -> psycopg.Connection[Any]:
        """A connection (autocommit) whose search path is the schema (`connection_string`)."""
        return psycopg.connect(self.connection_string(read_only=read_only, timed=timed),
                               autocommit=True)

    def connection_string(self, *, read_only: bool = False, timed: bool = False) -> str:
        """The libpq connection string of `connect`: the search path the schema, every
        transaction read-only if `read_only`, and each statement cancelled after
        `read_timeout_s` if `timed` (the readers of a serving process: the pooled ones, the
        metrics; a CLI export may read for long)."""
        options = f"-c search_path={self.schema}"  # a checked identifier (StoreConfig.parse)
        if read_only:
            options += " -c default_transaction_read_only=on"
        if timed:
            options += f" -c statement_timeout={int(self.read_timeout_s) * 1000}"
        return str(psycopg.conninfo.make_conninfo(self.conninfo, options=options))


ReadModelTarget = Path | PostgresReadModels
"""Where a read model lives: its SQLite file, or the PostgreSQL schema of all read models."""


class PostgresReadModelStore(PostgresEffectStore):
    """A projection's consumer store in the read models' schema: the bookkeeping of
    `PostgresEffectStore`, on a connection whose search path is that schema (the projections'
    statements name their tables unqualified)."""

    def __init__(self, target: PostgresReadModels) -> None:
        conninfo = psycopg.conninfo.make_conninfo(
            target.conninfo, options=f"-c search_path={target.schema}"
        )
        super().__init__(conninfo, target.schema)
        self._schema_name = target.schema

    def migrate(self, component: Component) -> None:
        """Bring a read model's tables in the schema to the newest version."""
        self.connection.run(
            partial(migrate_postgres, schema=self._schema_name, component=component),
            idempotent=True,  # each step commits with its version row: a rerun skips it
        )

    def forget(self, tx: psycopg.Connection[Any], projection: Projection) -> None:
        """Empty the projection's tables and forget what its consumer group processed."""
        for table in projection.tables:
            tx.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
        for table in ("processed_events", "consumer_offsets"):
            tx.execute(f"DELETE FROM {table} WHERE group_id = %s", (projection.group,))  # noqa: S608
        tx.execute("DELETE FROM read_model_progress WHERE projection = %s", (projection.name,))


@dataclass(frozen=True)
class ReadModelProgress:
    """How fresh a read model is: the recorded time of the newest event it applied (None if
    its events carry none) and when it last applied an event (UTC)."""

    as_of: datetime | None
    applied_at: datetime


def record_progress(
    tx: SQLConnection,
    projection: str,
    as_of: datetime | None,
    applied_at: datetime,
    *,
    notification_id: int | None = None,
) -> None:
    """Record, through the transaction that applied an event, that `projection` applied one
    recorded at `as_of` (kept if older than the newest so far: partitions interleave) and,
    when it read the event store's notification log, the id of the last notification it
    applied (`notification_id`; None keeps the one recorded: a bus consumer knows none)."""
    tx.execute(
        _RECORD_PROGRESS.format(p=placeholder(tx)),
        (projection, _text(as_of) if as_of else None, _text(applied_at), notification_id),
    )


def execute_many(tx: SQLConnection, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run `statement` (with the connection's placeholder) once for each of `rows`, in order,
    in one call to the driver: a batch's writes in bulk, as many `execute`s would leave them."""
    if not rows:
        return
    if isinstance(tx, sqlite3.Connection):
        tx.executemany(statement, rows)
        return
    with tx.cursor() as cursor:  # type: ignore[attr-defined]  # a psycopg connection
        cursor.executemany(statement, rows)


def fetch_all(
    db: SQLConnection, query: str, params: Sequence[Any], columns: int
) -> list[Sequence[Any]]:
    """Every row of `query` (selecting `columns` values of text, integers or NULL), in no
    particular order: a caller that needs one sorts them (`ORDER BY … LIMIT` in `query` still
    chooses which rows).

    From SQLite all rows arrive as one (a JSON array of arrays): Python's sqlite3 gives the
    interpreter's lock away for every row it steps and must take it back, which under the
    API's concurrent requests costs up to a switch interval (5 ms) behind a busy thread each
    time (issue 17: 100 rows of an office's cases, p99 33 -> 23 ms). JSON keeps text,
    integers and NULL exactly, not floating-point values (15 digits) nor blobs: columns of
    those kinds are not fetched this way. From PostgreSQL the rows come as the driver
    fetches them, all at once already."""
    if not isinstance(db, sqlite3.Connection):
        return list(db.execute(query, params).fetchall())
    names = ", ".join(f"c{column}" for column in range(columns))
    (rows,) = db.execute(
        f"WITH fetched ({names}) AS ({query}) "  # noqa: S608 - the caller's own text
        f"SELECT json_group_array(json_array({names})) FROM fetched",
        params,
    ).fetchone()
    return json.loads(rows)


def read_notification_id(db: SQLConnection, projection: str) -> int | None:
    """The id of the last notification of the event store that a rebuild or catch-up of
    `projection` applied (`record_progress`); None if none recorded one."""
    p = placeholder(db)
    row = db.execute(
        f"SELECT notification_id FROM read_model_progress WHERE projection = {p}",  # noqa: S608
        (projection,),
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def read_progress(db: SQLConnection, projection: str) -> ReadModelProgress | None:
    """The progress of `projection` in its read model, None if it has applied nothing yet (or
    its read model predates the progress table and no consumer has opened it since)."""
    p = placeholder(db)
    try:
        row = db.execute(
            f"SELECT as_of, applied_at FROM read_model_progress WHERE projection = {p}",  # noqa: S608
            (projection,),
        ).fetchone()
    except (sqlite3.OperationalError, psycopg.errors.UndefinedTable):
        return None
    if row is None:
        return None
    return ReadModelProgress(_time(row[0]) if row[0] else None, _time(row[1]))


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _time(text: str) -> datetime:
    """A time written by `_text` (ISO 8601 with `Z`): 0.1 µs, `strptime` took 6 (twice per
    API request)."""
    return datetime.fromisoformat(text)


def read_model_built(target: ReadModelTarget, table: str, *, timed: bool = False) -> bool:
    """True if the read model exists: its file, or its (first) table in the schema."""
    if isinstance(target, Path):
        return target.is_file()
    with target.connect(read_only=True, timed=timed) as db:
        row = db.execute("SELECT to_regclass(%s)", (f"{target.schema}.{table}",)).fetchone()
    return row is not None and row[0] is not None


@contextmanager
def read_model_connection(
    target: ReadModelTarget, *, timed: bool = False
) -> Iterator[SQLConnection]:
    """A read-only connection to a read model, for its query functions; closed on exit.
    `timed`: on PostgreSQL each statement at most the target's `read_timeout_s`."""
    if isinstance(target, Path):
        local = sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=10)
        try:
            yield local
        finally:
            local.close()
        return
    with target.connect(read_only=True, timed=timed) as remote:
        yield remote


@contextmanager
def open_read_model(
    target: ReadModelTarget, table: str, *, timed: bool = False
) -> Iterator[SQLConnection]:
    """A read-only connection to a built read model whose (first) table is `table`, for one
    reader; `ReadModelUnreadableError` if it is not built, cannot be opened, or fails while
    being read (half built, locked, I/O, server gone) — the database errors of either backend
    are translated here, at the storage boundary, so that no reader handles sqlite3 or
    psycopg."""
    try:
        built = read_model_built(target, table, timed=timed)
    except psycopg.Error as exc:
        raise ReadModelUnreadableError("cannot be opened") from exc
    if not built:
        raise ReadModelUnreadableError()
    with ExitStack() as stack:
        try:
            db = stack.enter_context(read_model_connection(target, timed=timed))
        except (sqlite3.Error, psycopg.Error) as exc:
            raise ReadModelUnreadableError("cannot be opened") from exc
        try:
            yield db
        except (
            sqlite3.OperationalError, psycopg.OperationalError, psycopg.ProgrammingError
        ) as exc:  # no such table (half-built), locked, I/O, server gone
            raise ReadModelUnreadableError(f"cannot be read ({exc})") from exc
